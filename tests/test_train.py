"""Surrogate training end to end against a real MLflow tracking store (SQLite) and registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from helpers import TINY_DATA, make_clone, mlflow_store
from helpers import run as run_cmd

TRAIN_DATA = TINY_DATA
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("train")]  # one trained module fixture


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone with the tiny dataset built by `dvc repro` (so dvc.lock has its md5s)."""
    root = make_clone(tmp_path_factory.mktemp("trainrepo"), "ttrain", TRAIN_DATA)
    run_cmd(root, "dvc", "repro", "spectra")
    return root


def _args(repo: Path, tmp: Path, *extra: str) -> list[str]:
    """`oscflow train` arguments for the test repository and a per-test MLflow store."""
    return [
        "train",
        f"paths.root_dir={repo}",
        "data=ttrain",
        f"logger.tracking_uri={mlflow_store(tmp)}",
        f"logger.artifact_location={tmp}/artifacts",
        "model.hidden=[32,32]",
        "callbacks.progress_bar=false",
        "trainer.log_every_n_steps=1",
        *extra,
    ]


def _train(repo: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> dict[str, Any]:
    import contextlib
    import io

    from oscflow.cli import main

    monkeypatch.setenv("OSCFLOW_CONFIG_DIR", str(repo / "conf"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(_args(repo, tmp, "--json", *extra))
    assert code == 0, out.getvalue()
    return json.loads(out.getvalue().strip().splitlines()[-1])


def _n_runs(tmp: Path) -> int:
    client = _client(tmp)
    return len(client.search_runs([client.get_experiment_by_name("juno-surrogate").experiment_id]))


@pytest.fixture(scope="module")
def trained(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    tmp = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as mp:
        result = _train(repo, tmp, mp, "trainer.max_epochs=3", f"paths.output_dir={tmp}/out")
    return result, tmp


def _client(tmp: Path) -> Any:
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = mlflow_store(tmp)
    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri)


def test_run_records_params_metrics_tags_inputs_and_artifacts(trained, repo: Path) -> None:
    from oscflow.tracking.lineage import dvc_md5s

    result, tmp = trained
    client = _client(tmp)
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "seed_mlp-32x32-silu-14k"
    p = run.data.params
    assert p["model.name"] == "seed_mlp"
    assert p["optim.lr"] == "0.002"
    assert p["optim.scheduler"] == "onecycle"
    assert p["model.hidden"] == "[32, 32]"
    assert p["experiment.cores.0.power_gw"] == "2.9"
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert len(history) == 3
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 3
    for key in (
        "max_rel_dev_peak1",
        "p99_rel_dev_peak1",
        "max_rel_dev_all",
        "artefact_rms_median",
        "latency_single_s",
        "throughput_per_s",
        "train_seconds",
        "fit_bias_max_sigma",
        "fit_bias_max_sigma.dm2_32",
    ):
        assert key in run.data.metrics
    md5 = dvc_md5s(repo)["data/juno/ttrain/spectra"]
    t = run.data.tags
    assert t["oscflow.dataset.spectra_md5"] == md5
    assert t["oscflow.dataset.pairs_md5"] == dvc_md5s(repo)["data/juno/ttrain/pairs"]
    assert len(t["mlflow.source.git.commit"]) >= 40
    assert t["oscflow.device"] == "cpu"
    assert "data=ttrain" in t["oscflow.hydra_overrides"]
    inputs = run.inputs.dataset_inputs
    assert sorted(i.tags[0].value for i in inputs) == ["test", "train", "val"]
    assert {i.dataset.digest for i in inputs} == {md5}
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {
        "accuracy.json",
        "config.yaml",
        "prediction_vs_truth.png",
        "predictions_sample.npz",
    } <= names
    # Summary metrics at step 0 (bar charts in MLflow's chart view), the losses per epoch; the
    # units in the run's description.
    for key in ("p99_rel_dev_peak1", "fit_bias_max_sigma", "latency_single_s", "n_parameters"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [0], key
    assert sorted({m.step for m in history}) != [0]
    note = t["mlflow.note.content"]
    assert "| `latency_single_s` |" in note
    assert "| `fit_bias_max_sigma` |" in note
    assert "| s |" in note
    assert "| σ |" in note
    assert result["ui"] is None  # a SQLite store has no UI


def test_registered_version_leads_back_to_the_dataset(trained, repo: Path) -> None:
    from oscflow.tracking.lineage import dvc_md5s

    result, tmp = trained
    client = _client(tmp)
    assert result["registered_model"] == "juno-spectrum"
    version = client.get_model_version("juno-spectrum", result["version"])
    tags = version.tags
    assert tags["oscflow.training_run"] == result["run_id"]
    assert float(tags["oscflow.metric.fit_bias_max_sigma"]) > 0  # the gate's training value
    run = client.get_run(tags["oscflow.training_run"])
    assert tags["oscflow.dataset.spectra_md5"] == dvc_md5s(repo)["data/juno/ttrain/spectra"]
    assert run.data.tags["oscflow.config_hash"] == tags["oscflow.config_hash"]
    assert float(tags["oscflow.metric.max_rel_dev_peak1"]) == pytest.approx(
        run.data.metrics["max_rel_dev_peak1"], rel=1e-5
    )


def test_loading_by_uri_reproduces_the_logged_predictions(trained) -> None:
    import mlflow
    import pandas as pd

    from oscflow.registry import load_surrogate

    result, tmp = trained
    _client(tmp)
    sample = np.load(
        mlflow.artifacts.download_artifacts(
            run_id=result["run_id"], artifact_path="predictions_sample.npz"
        )
    )
    fast = load_surrogate(f"models:/juno-spectrum/{result['version']}")
    np.testing.assert_allclose(fast.predict(sample["params"]), sample["predictions"], rtol=1e-6)
    # the exact spectra at those points and the binning: what `oscflow compare` overlays
    assert sample["truth"].shape == sample["predictions"].shape
    assert sample["bin_edges"].shape == (sample["truth"].shape[1] + 1,)
    assert list(sample["inputs"]) == ["sin2_th12", "sin2_th13", "dm2_21", "dm2_32"]
    assert str(sample["energy"]) == "prompt"
    generic = mlflow.pyfunc.load_model(f"models:/juno-spectrum/{result['version']}")
    frame = pd.DataFrame(sample["params"], columns=list(fast.inputs))
    np.testing.assert_allclose(np.asarray(generic.predict(frame)), sample["predictions"], rtol=1e-6)


def test_pearson_loss_logs_the_chi2_of_the_validation_split_which_bounds_the_fit_bias(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``loss=pearson`` end to end: the last logged val_loss is the mean Pearson χ² of the
    registered model's spectra against the validation split (counts at the dataset's exposure),
    and on the test split √pearson_chi2_max bounds fit_bias_max_sigma (surrogate.losses)."""
    from oscflow.registry import load_surrogate

    result = _train(
        repo,
        tmp_path,
        monkeypatch,
        "loss=pearson",
        "trainer.max_epochs=2",
        f"paths.output_dir={tmp_path}/p",
    )
    history = _client(tmp_path).get_metric_history(result["run_id"], "val_loss")
    logged = max(history, key=lambda m: m.step).value
    spectra = repo / "data" / "juno" / "ttrain" / "spectra"
    params, truth = np.load(spectra / "val_params.npy"), np.load(spectra / "val_spectra.npy")
    pred = load_surrogate(f"models:/juno-spectrum/{result['version']}").predict(params)
    t = truth.astype(np.float64)
    chi2 = np.sum(np.where(t > 0, (pred - t) ** 2 / np.where(t > 0, t, 1.0), 0.0), axis=1)
    np.testing.assert_allclose(logged, chi2.mean(), rtol=1e-3)
    metrics = result["metrics"]
    assert 0 < metrics["fit_bias_max_sigma"] <= np.sqrt(metrics["pearson_chi2_max"])


def test_resume_continues_the_step_count_in_the_same_run(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _train(
        repo,
        tmp_path,
        monkeypatch,
        "trainer.max_epochs=2",
        f"paths.output_dir={tmp_path}/a",
        "logger.register=false",
    )
    ckpt = Path(first["checkpoint_dir"]) / "last.ckpt"
    assert ckpt.is_file()
    second = _train(
        repo,
        tmp_path,
        monkeypatch,
        "trainer.max_epochs=4",
        f"ckpt_path={ckpt}",
        f"paths.output_dir={tmp_path}/b",
        "logger.register=false",
    )
    assert second["run_id"] == first["run_id"]
    history = _client(tmp_path).get_metric_history(first["run_id"], "val_loss")
    steps = sorted(m.step for m in history)
    assert len(steps) == 4
    assert steps == sorted(set(steps))
    per_epoch = 512 // 64
    assert steps[-1] == 4 * per_epoch - 1 or steps[-1] == 4 * per_epoch


def test_mismatched_dataset_is_refused_before_anything_is_written(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from oscflow.cli import main

    first = _train(
        repo,
        tmp_path,
        monkeypatch,
        "trainer.max_epochs=1",
        f"paths.output_dir={tmp_path}/a",
        "logger.register=false",
    )
    ckpt = Path(first["checkpoint_dir"]) / "last.ckpt"
    blob = torch.load(ckpt, map_location="cpu", weights_only=False)
    blob["oscflow"]["spec"]["bin_edges"] = list(np.linspace(0.8, 12.0, 201))
    bad = tmp_path / "other-binning.ckpt"
    torch.save(blob, bad)
    n_runs = _n_runs(tmp_path)
    monkeypatch.setenv("OSCFLOW_CONFIG_DIR", str(repo / "conf"))
    code = main(_args(repo, tmp_path, f"ckpt_path={bad}", f"paths.output_dir={tmp_path}/c"))
    assert code == 1
    err = capsys.readouterr().err
    assert "does not match the model" in err
    assert "binning 400 bins 0.8–8.8 MeV ≠ model's 200 bins 0.8–12 MeV" in err
    assert not (tmp_path / "c").exists()
    assert _n_runs(tmp_path) == n_runs


def test_nan_loss_stops_the_run_and_marks_it_failed(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from oscflow.cli import main

    monkeypatch.setenv("OSCFLOW_CONFIG_DIR", str(repo / "conf"))
    code = main(
        _args(
            repo,
            tmp_path,
            "optim.lr=1e30",
            "trainer.max_epochs=5",
            f"paths.output_dir={tmp_path}/o",
        )
    )
    assert code == 1
    assert "training loss is" in capsys.readouterr().err
    client = _client(tmp_path)
    runs = client.search_runs([client.get_experiment_by_name("juno-surrogate").experiment_id])
    assert len(runs) == 1
    assert runs[0].info.status == "FAILED"
    assert (
        runs[0]
        .data.tags["oscflow.failure_reason"]
        .startswith("NonFiniteLossError: training loss is")
    )


def test_ddp_on_two_cpu_processes_makes_one_run(repo: Path, tmp_path: Path) -> None:
    """trainer=ddp: Lightning re-launches the command per rank; rank 1 trains in rank 0's run
    and logs nothing of its own."""
    out = run_cmd(
        repo,
        "oscflow",
        "train",
        "--json",
        "data=ttrain",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.max_epochs=2",
        "trainer.log_every_n_steps=1",
        "model.hidden=[32,32]",
        "callbacks.progress_bar=false",
        "logger.register=false",
        "timing=false",
        f"logger.tracking_uri={mlflow_store(tmp_path)}",
        f"logger.artifact_location={tmp_path}/art",
        f"paths.output_dir={tmp_path}/out",
    )
    lines = [line for line in out.splitlines() if line.startswith('{"run_id"')]
    assert len(lines) == 1  # printed by rank 0 only
    result = json.loads(lines[0])
    client = _client(tmp_path)
    runs = client.search_runs([client.get_experiment_by_name("juno-surrogate").experiment_id])
    assert len(runs) == 1
    assert runs[0].info.status == "FINISHED"
    assert len(client.get_metric_history(runs[0].info.run_id, "val_loss")) == 2
    assert result["run_id"] == runs[0].info.run_id


def test_two_jobs_started_together_get_their_own_output_directories() -> None:
    """`make demo` starts both orderings' trainings at once: with a per-second directory they
    shared outputs/<time>/artifacts/surrogate.pt and one registered the other's model."""
    from oscflow.config import load

    first, second = (load("train", []).paths.output_dir for _ in range(2))
    assert first != second
    assert load("sensitivity", []).output_dir != load("sensitivity", []).output_dir
