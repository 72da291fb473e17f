"""Reliability of surrogates and of the jobs that run them (issue 20):

- a surrogate answers only what it was trained for: every setting of its training (inputs and
  fixed values, ordering, matter, detector, reactors, binning) is checked against the request
  in predict, fit, sensitivity and validate, refused with what the model takes, or honoured
  exactly (exposure, free protons) — defect 9;
- a corrupt ``MLmodel`` / ``python_model.pkl`` / ``surrogate.pt`` is an error naming the model,
  the file and the fix — defect 5;
- a version's lineage is on it when its event is handled (tags set at registration, else read
  from its training run, never the platform's defaults); a job that failed for missing lineage
  runs when the tags appear, and its failure is no longer reported once superseded — defect 2;
- permanent job errors fail at once (one FAILED run, no retry), transient ones are retried —
  defect 10.

Against real MLflow stores (SQLite): the session's tiny registered surrogate, and copies of it
registered in per-test stores where a test changes a store or a model's files.
"""

from __future__ import annotations

import inspect
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import torch
from mlflow.entities import Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from helpers import mlflow_store
from oscflow.config import load, to_container
from oscflow.errors import ConfigError, OscflowError

pytestmark = pytest.mark.slow  # the registered_surrogate fixture trains a tiny model once

NAME = "juno-spectrum"


@pytest.fixture
def r(surrogate: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The session's surrogate (unpaired), with its repository's conf/ selected."""
    monkeypatch.setenv("OSCFLOW_CONFIG_DIR", f"{surrogate['root']}/conf")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return surrogate


def _store(r: dict[str, str], uri: str | None = None) -> list[str]:
    return [
        f"paths.root_dir={r['root']}",
        "data=ttrain",
        f"logger.tracking_uri={uri or r['tracking_uri']}",
    ]


def _predict(r: dict[str, str], *extra: str) -> dict[str, Any]:
    from oscflow.predict import run

    return run(load("predict", [*_store(r), "predictor=surrogate", f"model_uri={r['model_uri']}",
                                *extra]))  # fmt: skip


def _copy_version(
    r: dict[str, str],
    tmp: Path,
    *,
    version_tags: dict[str, str] | None = None,
    run_tags: dict[str, str] | None = None,
    run_params: dict[str, str] | None = None,
    edit: Callable[[Path], None] | None = None,
) -> tuple[str, Path]:
    """The session's surrogate registered as ``juno-spectrum`` v1 in a new SQLite store under
    ``tmp`` (helpers.mlflow_store; its files, after ``edit``, uploaded to a run there carrying ``run_tags`` and
    ``run_params``). Returns the store's URI and the model's directory in its artifacts."""
    mlflow.set_tracking_uri(r["tracking_uri"])
    local = Path(mlflow.artifacts.download_artifacts(r["model_uri"], dst_path=str(tmp / "dl")))
    if edit is not None:
        edit(local)
    uri = mlflow_store(tmp)
    client = MlflowClient(uri)
    exp = client.create_experiment("juno-surrogate", artifact_location=(tmp / "art").as_uri())
    run_id = client.create_run(exp, tags=run_tags or {}).info.run_id
    params = [Param(k, v) for k, v in (run_params or {}).items()]
    for start in range(0, len(params), 100):
        client.log_batch(run_id, params=params[start : start + 100])
    client.log_artifacts(run_id, str(local), "model")
    client.set_terminated(run_id)
    client.create_registered_model(NAME)
    client.create_model_version(NAME, f"runs:/{run_id}/model", run_id=run_id, tags=version_tags)
    mlflow.set_tracking_uri(uri)
    return uri, tmp / "art" / run_id / "artifacts" / "model"


def _lineage(r: dict[str, str]) -> dict[str, str]:
    """The lineage tags of the session's version (as registration set them: not what other
    tests' validations and promotions added since)."""
    tags = MlflowClient(r["tracking_uri"]).get_model_version(r["name"], r["version"]).tags
    return {
        k: v
        for k, v in tags.items()
        if not k.startswith(("oscflow.validation.", "oscflow.promotion.", "oscflow.gate."))
    }


# ------------------------------------------------------------------ defect 9: trained settings


@pytest.mark.parametrize(
    ("override", "key", "needle"),
    [
        ("+params.escale=1.005", "params.escale", "it was trained with escale=1.0"),
        ("+params.res_a=0.03", "params.res_a", "it was trained with res_a=0.0261"),
        (
            "experiment.oscillation.ordering=inverted",
            "experiment.oscillation.ordering",
            "ordering=normal (asked: inverted)",
        ),
        (
            "experiment.oscillation.matter=false",
            "experiment.oscillation.matter",
            "matter=true (asked: false)",
        ),
        ("experiment.detector.res_a=0.05", "experiment.detector.res_a", "res_a=0.0261 (asked"),
        (
            "experiment.spectrum_extrapolation=polynomial",
            "experiment.spectrum_extrapolation",
            "extrapolation=exponential (asked: polynomial)",
        ),
        ("experiment.oscillation.density=3.0", "experiment.oscillation.density", "=2.45"),
        ("binning.nbins=200", "binning", "not the requested binning"),
    ],
)
def test_predict_refuses_what_the_surrogate_was_not_trained_for(
    r: dict[str, str], override: str, key: str, needle: str
) -> None:
    with pytest.raises(ConfigError) as err:
        _predict(r, override)
    assert err.value.key == key
    message = str(err.value)
    assert needle in message
    assert "predictor=exact" in message or "energy=prompt" in message  # the fix


def test_predict_names_what_the_model_takes(r: dict[str, str]) -> None:
    with pytest.raises(
        ConfigError, match=r"takes \['sin2_th12', 'sin2_th13', 'dm2_21', 'dm2_32'\]"
    ):
        _predict(r, "+params.escale=1.005")


def test_predict_honours_exposure_and_free_protons_exactly(r: dict[str, str]) -> None:
    nominal = np.asarray(_predict(r)["by_source"]["reactors"])
    same = _predict(r, "+params.escale=1.0")  # its training value: the same question
    np.testing.assert_array_equal(same["by_source"]["reactors"], nominal)
    doubled = _predict(r, "experiment.free_protons=2.88e33")
    np.testing.assert_allclose(doubled["by_source"]["reactors"], 2 * nominal, rtol=1e-12)
    year = _predict(r, "exposure.days=365.25", "exposure.efficiency=0.5")
    factor = 365.25 * 0.5 / (2191.5 * 0.822)
    np.testing.assert_allclose(year["by_source"]["reactors"], factor * nominal, rtol=1e-12)


def _fit_cfg(r: dict[str, str], *extra: str, model: str | None = None) -> Any:
    quick = ["orderings=false", "fit/nuisances=stat_only", "observation.generator=model"]
    return load("fit", [*_store(r), f"model_uri={model or r['model_uri']}", "record=false",
                        *quick, *extra])  # fmt: skip


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("+params.escale=1.005", "params.escale"),
        ("experiment.oscillation.matter=false", "experiment.oscillation.matter"),
        ("experiment.detector.res_b=0.02", "experiment.detector.res_b"),
        ("start.escale=1.01", "start.escale"),
    ],
)
def test_fit_refuses_what_the_surrogate_was_not_trained_for(
    r: dict[str, str], override: str, key: str
) -> None:
    from oscflow.services.fit.setup import setup

    with pytest.raises(ConfigError) as err:
        setup(_fit_cfg(r, override))
    assert err.value.key == key


def test_fit_checks_the_other_ordering_model_against_the_other_ordering(r: dict[str, str]) -> None:
    """A model named for the other ordering is used as named: its own pair (if another test
    registered one) must not stand in for it."""
    from oscflow.services.fit.setup import ordering_models, setup

    fs = setup(_fit_cfg(r, f"other_ordering_model={r['model_uri']}"))
    with pytest.raises(ConfigError, match=r"ordering=normal \(asked: inverted\)"):
        ordering_models(fs)


def _sensitivity(r: dict[str, str], *extra: str) -> dict[str, Any]:
    from oscflow.services.sensitivity import promotion_overrides, run

    fast = ["record=false", "plot.enabled=false", "spectral.enabled=false", "scans.enabled=false"]
    return run(load("sensitivity", [*promotion_overrides(r["model_uri"]), *_store(r), *fast,
                                    *extra]))  # fmt: skip


def test_sensitivity_refuses_other_settings_and_scales_free_protons_exactly(
    r: dict[str, str],
) -> None:
    with pytest.raises(ConfigError) as err:
        _sensitivity(r, "experiment.oscillation.matter=false")
    assert err.value.key == "experiment.oscillation.matter"
    with pytest.raises(ConfigError, match=r"params\.escale"):
        _sensitivity(r, "+params.escale=1.01")
    one = _sensitivity(r)["windows"]
    two = _sensitivity(r, "exposure.free_protons=2.88e33")["windows"]
    for name, window in one.items():
        b = window["categories"]["reactors"]["b"]
        assert two[name]["categories"]["reactors"]["b"] == pytest.approx(2 * b, rel=1e-9)


def test_validation_refuses_an_exact_model_the_surrogate_was_not_trained_for(
    r: dict[str, str], tmp_path: Path
) -> None:
    from oscflow.services import validate

    uri, _ = _copy_version(r, tmp_path, version_tags=_lineage(r))
    cfg = load("validate", [*_store(r, uri), f"model_uri=models:/{NAME}/1", "n_points=5",
                            "bias_points=0", "experiment.oscillation.matter=false"])  # fmt: skip
    with pytest.raises(ConfigError, match=r"matter=true \(asked: false\)"):
        validate.record(cfg, {})
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("juno-validation").experiment_id])
    assert [run.info.status for run in runs] == ["FAILED"]
    assert "oscflow.validation.max_rel_dev_peak1" not in client.get_model_version(NAME, "1").tags


def _strip_training_settings(model_dir: Path) -> None:
    """Make the model look like one saved before oscflow recorded its training settings."""
    path = model_dir / "artifacts" / "surrogate.pt"
    blob = torch.load(path, map_location="cpu", weights_only=True)
    blob["spec"].pop("trained_with", None)
    torch.save(blob, path)


def test_older_models_are_checked_against_their_training_runs_params(
    r: dict[str, str], tmp_path: Path
) -> None:
    from oscflow.registry.reactors import SurrogateReactors
    from oscflow.tracking.lineage import flatten

    trained = flatten(to_container(load("train", []).experiment), "experiment.")
    uri, _ = _copy_version(r, tmp_path / "a", run_params=trained, edit=_strip_training_settings)
    old = SurrogateReactors.load(f"models:/{NAME}/1", uri)
    assert not old.spec.trained_with
    old.check_request(load("predict", []).experiment)  # its training settings: accepted
    inverted = load("predict", ["experiment.oscillation.ordering=inverted"]).experiment
    with pytest.raises(ConfigError, match=r"ordering=normal \(asked: inverted\)"):
        old.check_request(inverted)
    # neither recorded in the model nor in a training run: nothing can be checked, refused
    uri, _ = _copy_version(r, tmp_path / "b", edit=_strip_training_settings)
    bare = SurrogateReactors.load(f"models:/{NAME}/1", uri)
    with pytest.raises(ConfigError, match="records no training settings"):
        bare.check_request(load("predict", []).experiment)


# -------------------------------------------------------------- defect 5: corrupt artifacts


def _write(rel: str, data: bytes | None) -> Callable[[Path], None]:
    def mutate(model_dir: Path) -> None:
        path = model_dir / rel
        if data is None:
            path.unlink()
        elif data == b"TRUNCATE":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        else:
            path.write_bytes(data)

    return mutate


@pytest.mark.parametrize(
    ("file", "mutate"),
    [
        ("MLmodel", _write("MLmodel", b"\xff\x00flavors: [unclosed")),
        ("MLmodel", _write("MLmodel", b"flavors: {}\n")),
        ("MLmodel", _write("MLmodel", None)),
        ("python_model.pkl", _write("python_model.pkl", b"not a pickle")),
        ("python_model.pkl", _write("python_model.pkl", b"TRUNCATE")),
        ("artifacts/surrogate.pt", _write("artifacts/surrogate.pt", b"TRUNCATE")),
        ("artifacts/surrogate.pt", _write("artifacts/surrogate.pt", b"\x00" * 64)),
        ("artifacts/surrogate.pt", _write("artifacts/surrogate.pt", None)),
    ],
)
def test_a_corrupt_artifact_is_an_error_naming_the_model_the_file_and_the_fix(
    r: dict[str, str], tmp_path: Path, file: str, mutate: Callable[[Path], None]
) -> None:
    from oscflow.registry.reactors import SurrogateReactors

    uri, model_dir = _copy_version(r, tmp_path)
    mutate(model_dir)
    model = f"models:/{NAME}/1"
    with pytest.raises(OscflowError) as err:  # what predict, fit and sensitivity call
        SurrogateReactors.load(model, uri)
    message = str(err.value)
    assert model in message
    assert f"{file} is missing or corrupt" in message
    assert "re-register" in message
    assert "artifact store" in message

    from oscflow.registry.models import ModelArtifactError, load_surrogate

    with pytest.raises(ModelArtifactError) as direct:  # and what validate calls
        load_surrogate(model)
    assert direct.value.file == file


def test_predict_reports_a_corrupt_artifact_without_a_traceback(
    r: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from oscflow.cli import main

    uri, model_dir = _copy_version(r, tmp_path)
    _write("artifacts/surrogate.pt", b"TRUNCATE")(model_dir)
    code = main(["predict", *_store(r, uri), "predictor=surrogate", f"model_uri=models:/{NAME}/1"])
    err = capsys.readouterr().err
    assert code != 0
    assert "artifacts/surrogate.pt is missing or corrupt" in err
    assert "Traceback" not in err


# ----------------------------------------------------------- defects 2 and 10: the jobs


@pytest.fixture
def fresh_plans(monkeypatch: pytest.MonkeyPatch) -> None:
    """The workers' per-process plan caches, empty (each test has its own store)."""
    from oscflow.events import jobs

    monkeypatch.setattr(jobs, "_PLANS", {})
    monkeypatch.setattr(jobs, "_VERSIONS", {})


def _platform(r: dict[str, str], tmp: Path, tracking_uri: str, *extra: str) -> Any:
    return load("platform", [
        f"paths.root_dir={r['root']}",
        f"state_dir={tmp}/state",
        f"tracking_uri={tracking_uri}",
        f"queue.name=q-{uuid.uuid4().hex[:8]}",
        "workers.retries=3",
        "workers.retry_delay_s=60",  # a retry is scheduled, never due during the test
        'service_overrides.validate=["n_points=8","bias_points=1"]',
        *extra,
    ])  # fmt: skip


def _run_next(queue: Any) -> None:
    """Execute the next queued task in this process, as a worker thread would."""
    task = queue.huey.dequeue()
    assert task is not None, "nothing queued"
    queue.huey.execute(task)


def test_registration_creates_the_version_with_its_lineage_tags(
    r: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tags are part of the create call (what the model_version.created webhook follows),
    not set afterwards."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    from oscflow.registry.models import log_and_register
    from oscflow.surrogate.model import SpectrumSurrogate

    mlflow.set_tracking_uri(r["tracking_uri"])
    local = Path(mlflow.artifacts.download_artifacts(r["model_uri"], dst_path=str(tmp_path)))
    model = SpectrumSurrogate.load(local / "artifacts" / "surrogate.pt")
    uri = mlflow_store(tmp_path)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp = client.create_experiment("juno-surrogate", artifact_location=(tmp_path / "a").as_uri())
    run_id = client.create_run(exp).info.run_id
    created: list[dict[str, str]] = []
    original = SqlAlchemyStore.create_model_version
    signature = inspect.signature(original)

    def spy(*args: Any, **kwargs: Any) -> Any:
        tags = signature.bind(*args, **kwargs).arguments.get("tags") or []
        created.append({t.key: t.value for t in tags})
        return original(*args, **kwargs)

    monkeypatch.setattr(SqlAlchemyStore, "create_model_version", spy)
    tags = {"oscflow.experiment": "juno", "oscflow.dataset.name": "ttrain", "oscflow.x": "1"}
    out = log_and_register(model, run_id, tmp_path / "work", tags)
    assert len(created) == 1
    assert created[0] == tags
    mv = client.get_model_version(NAME, out["version"])
    assert mv.run_id == run_id
    assert {k: mv.tags[k] for k in tags} == tags


@pytest.mark.usefixtures("fresh_plans")
def test_a_version_without_tags_takes_its_lineage_from_its_training_run(
    r: dict[str, str], tmp_path: Path
) -> None:
    from oscflow.events.jobs import plan
    from oscflow.events.routing import JobSpec

    run_tags = {"oscflow.experiment": "juno", "oscflow.dataset.name": "ttrain"}
    uri, _ = _copy_version(r, tmp_path, run_tags=run_tags)  # the version itself: no tags
    planned = plan(JobSpec("validate", NAME, "1"), _platform(r, tmp_path, uri))
    assert planned.cfg.data.name == "ttrain"  # not the platform's data=demo
    assert planned.cfg.experiment.name == "juno"


@pytest.mark.usefixtures("fresh_plans")
def test_missing_lineage_fails_fast_then_runs_when_the_tags_appear(
    r: dict[str, str], tmp_path: Path
) -> None:
    from oscflow.events.jobs import plan
    from oscflow.events.queue import Queue
    from oscflow.events.reconciler import reconcile
    from oscflow.events.routing import JobSpec

    uri, _ = _copy_version(r, tmp_path)  # no lineage on the version nor on its run
    cfg = _platform(r, tmp_path, uri)
    spec = JobSpec("validate", NAME, "1", "delivery-1")
    with pytest.raises(OscflowError, match=r"no oscflow\.experiment, oscflow\.dataset\.name"):
        plan(spec, cfg)  # not the platform's data=demo in their place
    queue = Queue(cfg)
    queue.enqueue_job(spec)
    _run_next(queue)
    assert queue.huey.scheduled_count() == 0  # permanent: no retry
    assert queue.depth() == 0
    [failure] = queue.ledger.jobs(state="failed")
    assert failure["version"] == "1"
    assert "LineageMissing" in failure["error"]
    assert "set_model_version_tag" in failure["error"]  # the fix
    client = MlflowClient(uri)
    jobs_exp = client.get_experiment_by_name("oscflow-jobs")
    [failed_run] = client.search_runs([jobs_exp.experiment_id])
    assert failed_run.info.status == "FAILED"
    assert "LineageMissing" in failed_run.data.tags["oscflow.failure_reason"]
    assert reconcile(queue)["enqueued"] == []  # still no lineage: nothing to retry yet

    client.set_model_version_tag(NAME, "1", "oscflow.experiment", "juno")
    client.set_model_version_tag(NAME, "1", "oscflow.dataset.name", "ttrain")
    assert reconcile(queue)["enqueued"] == [f"validate {NAME} v1"]
    _run_next(queue)
    validation = client.get_experiment_by_name("juno-validation")
    [finished] = client.search_runs([validation.experiment_id])
    assert finished.info.status == "FINISHED"
    assert finished.data.params["model_uri"] == f"models:/{NAME}/1"
    assert "oscflow.validation.max_rel_dev_peak1" in client.get_model_version(NAME, "1").tags
    assert queue.ledger.jobs(state="failed") == []  # superseded: `status` reports no failure
    assert reconcile(queue)["enqueued"] == []


@pytest.mark.usefixtures("fresh_plans")
def test_a_job_for_a_version_that_is_gone_fails_once_without_retries(
    r: dict[str, str], tmp_path: Path
) -> None:
    from oscflow.events.queue import Queue
    from oscflow.events.routing import JobSpec

    uri, _ = _copy_version(r, tmp_path, version_tags=_lineage(r))
    queue = Queue(_platform(r, tmp_path, uri))
    queue.enqueue_job(JobSpec("validate", NAME, "7", "delivery-7"))  # no version 7
    _run_next(queue)
    assert queue.huey.scheduled_count() == 0
    assert queue.depth() == 0
    [job] = queue.ledger.jobs(state="failed")
    assert job["attempts"] == 1
    assert "RESOURCE_DOES_NOT_EXIST" in job["error"] or "not found" in job["error"]
    client = MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(ids, "tags.`oscflow.model.version` = '7'")
    assert [run.info.status for run in runs] == ["FAILED"]
    assert "not found" in runs[0].data.tags["oscflow.failure_reason"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.usefixtures("fresh_plans")
def test_a_job_whose_tracking_server_is_unreachable_is_retried(
    r: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oscflow.events.queue import Queue
    from oscflow.events.routing import JobSpec

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    queue = Queue(_platform(r, tmp_path, f"http://127.0.0.1:{_free_port()}"))
    queue.enqueue_job(JobSpec("validate", NAME, "1", "delivery-1"))
    _run_next(queue)
    assert queue.huey.scheduled_count() == 1  # transient: the back-off's next attempt


def test_errors_are_classified_permanent_or_transient() -> None:
    import requests

    from oscflow.events.jobs import PERMANENT, TRANSIENT, classify

    def caused(outer: BaseException, inner: BaseException) -> BaseException:
        try:
            try:
                raise inner
            except BaseException as exc:
                raise outer from exc
        except BaseException as exc:  # noqa: BLE001 — the chained exception itself
            return exc

    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, TEMPORARILY_UNAVAILABLE

    gone = MlflowException("Model Version not found", error_code=RESOURCE_DOES_NOT_EXIST)
    assert classify(gone) == PERMANENT
    assert classify(ConfigError("data", "no MC pairs", "run dvc repro")) == PERMANENT
    assert classify(caused(RuntimeError("wrapped"), gone)) == PERMANENT
    refused = requests.exceptions.ConnectionError("Connection refused")
    api = caused(MlflowException("API request to http://x failed with exception"), refused)
    assert classify(api) == TRANSIENT
    cannot_load = caused(ConfigError("model", "cannot load models:/m/1", "check the URI"), api)
    assert classify(cannot_load) == TRANSIENT  # a refused connection is no config error
    assert classify(TimeoutError("timed out")) == TRANSIENT
    busy = MlflowException("try later", error_code=TEMPORARILY_UNAVAILABLE)
    assert classify(busy) == TRANSIENT
    assert classify(ValueError("unexpected")) == TRANSIENT  # unknown: retried as before
