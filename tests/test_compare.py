"""``oscflow compare`` and the MLflow UI links: runs with known metrics written straight into a
temporary SQLite MLflow store (the names, tags and artifacts ``oscflow train`` writes), then
the table, the Pareto fronts, the residual patterns, the recorded comparison run, the sweep
link, the registered-model variant, ``registry show``'s columns, and bad input."""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from architecture_runs import (
    CENTRES,
    EDGES,
    INPUTS,
    MD5,
    NAMES,
    PARAMS,
    RUNS,
    sample_points,
    sample_truth,
    training_run,
)
from helpers import mlflow_store
from oscflow.cli import main
from oscflow.tracking import tags
from oscflow.tracking.compare import METRICS, pareto_front, residual_patterns
from oscflow.tracking.ui import ui_link


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A SQLite store with `juno-surrogate`: the four runs (oldest first), a failed run, a
    sweep's parent with two trials; `juno-spectrum` v1 (from the first run, validated) and v2
    (from the third, its validation failing the fit-bias gate)."""
    from mlflow.tracking import MlflowClient

    from oscflow.tracking.runs import ensure_experiment

    tmp = tmp_path_factory.mktemp("compare")
    uri = mlflow_store(tmp)
    client = MlflowClient(uri)
    exp = ensure_experiment(client, "juno-surrogate", str(tmp / "artifacts"))
    ids = {name: training_run(client, exp, name, spec, tmp) for name, spec in RUNS.items()}
    failed = client.create_run(exp, run_name="crashed", tags={tags.ARCHITECTURE: "resmlp"})
    client.set_terminated(failed.info.run_id, "FAILED")
    parent = client.create_run(exp, run_name="sweep-juno_arch", tags={tags.SWEEP: "parent"})
    parent_id = parent.info.run_id
    trials = [
        training_run(
            client, exp, f"trial-{i}", RUNS[NAMES[i]], tmp, **{tags.MLFLOW_PARENT_RUN: parent_id}
        )
        for i in (0, 2)
    ]
    client.set_terminated(parent_id, "FINISHED")
    client.create_registered_model("juno-spectrum")
    for name, validation in ((NAMES[0], "0.06"), (NAMES[2], "0.25")):
        client.create_model_version(
            "juno-spectrum",
            f"runs:/{ids[name]}/model",
            run_id=ids[name],
            tags={
                tags.TRAINING_RUN: ids[name],
                tags.EXPERIMENT: "juno",
                tags.ARCHITECTURE: RUNS[name]["architecture"],
                **{
                    f"{tags.METRIC_PREFIX}{k}": f"{v:.6g}" for k, v in RUNS[name]["metrics"].items()
                },
                f"{tags.VALIDATION_PREFIX}fit_bias_max_sigma": validation,
            },
        )
    # a version whose training run is gone (deleted, or another store's)
    client.create_registered_model("orphan-spectrum")
    client.create_model_version(
        "orphan-spectrum",
        "runs:/0123456789abcdef0123456789abcdef/model",
        tags={tags.TRAINING_RUN: "0123456789abcdef0123456789abcdef", tags.ARCHITECTURE: "resmlp"},
    )
    return {
        "tmp": tmp,
        "uri": uri,
        "client": client,
        "experiment_id": exp,
        "ids": ids,
        "parent": parent_id,
        "trials": trials,
        "failed": failed.info.run_id,
    }


def _oscflow(store: dict[str, Any], *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    tmp = store["tmp"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(
            [
                *args,
                f"logger.tracking_uri={store['uri']}",
                f"logger.artifact_location={tmp}/artifacts",
                f"paths.root_dir={tmp}",
            ]
        )
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def compared(store: dict[str, Any]) -> dict[str, Any]:
    code, out, err = _oscflow(store, "compare", "juno-surrogate", "--json")
    assert code == 0, err
    return dict(json.loads(out))


# --- pure functions ------------------------------------------------------------------------


def test_pareto_front_is_the_set_of_points_nothing_dominates() -> None:
    # (cost, error): b dominates d; a and c trade off; e equals a (both stay); f lacks a value
    cost = [10.0, 5.0, 1.0, 7.0, 10.0, None]
    error = [1.0, 2.0, 9.0, 3.0, 1.0, 0.1]
    assert pareto_front(cost, error) == [True, True, True, False, True, False]
    assert pareto_front([1.0], [1.0]) == [True]
    assert pareto_front([], []) == []
    # a chain: each point worse in both than the one before
    assert pareto_front([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == [True, False, False]
    # equal cost, worse error: dominated; NaN is missing
    assert pareto_front([1.0, 1.0, math.nan], [1.0, 2.0, 0.0]) == [True, False, False]
    with pytest.raises(ValueError, match="differ in length"):
        pareto_front([1.0], [])


def test_ui_links_open_the_training_view() -> None:
    base = "http://127.0.0.1:5000"
    ml = "?workflowType=machine_learning"
    assert ui_link(base) == f"{base}/#/experiments{ml}"
    assert ui_link(base + "/", experiment_id="7") == f"{base}/#/experiments/7{ml}"
    assert (
        ui_link("https://u:secret@mlflow.example:8443/", experiment_id="7", run_id="ab12")
        == f"https://mlflow.example:8443/#/experiments/7/runs/ab12{ml}"
    )
    assert (
        ui_link(base, experiment_id="7", run_id="ab", artifact="comparison_report.png")
        == f"{base}/#/experiments/7/runs/ab/artifacts/comparison_report.png{ml}"
    )
    assert ui_link(base, model="juno-spectrum", version=3) == (
        f"{base}/#/models/juno-spectrum/versions/3{ml}"
    )
    for no_ui in ("sqlite:///mlflow.db", "file:///tmp/mlruns", "", None):
        assert ui_link(no_ui, experiment_id="1") is None


def test_residual_patterns_at_common_points_skip_what_cannot_be_compared() -> None:
    points = sample_points()
    truth = sample_truth(points)
    sample = {"params": points, "truth": truth, "bin_edges": EDGES}
    samples = [
        ("a", {**sample, "predictions": truth * 1.01}),
        ("b", {**sample, "predictions": truth * 0.98}),
        ("old", {"params": points, "predictions": truth}),  # no exact spectra
        ("rebinned", {**sample, "bin_edges": EDGES * 2, "predictions": truth}),
        ("other", {**sample, "params": points + 1.0, "predictions": truth}),
        ("none", None),
    ]
    res = residual_patterns(samples, n_points=3)
    assert list(res["curves"]) == ["a", "b"]
    assert set(res["skipped"]) == {"old", "rebinned", "other", "none"}
    assert len(res["points"]) == 3
    for label, value in (("a", 0.01), ("b", -0.02)):
        for row in res["curves"][label]:
            assert row[0] is None
            assert row[-1] is None
            assert np.allclose(row[1:-1], value, rtol=1e-12, atol=0)


# --- the command ---------------------------------------------------------------------------


def test_table_has_the_logged_values_and_names_what_is_missing(
    compared: dict[str, Any], store: dict[str, Any]
) -> None:
    rows = compared["rows"]
    # the four training runs, oldest first: not the failed run, the sweep parent or... the
    # trials, which are training runs of the experiment too
    names = [r["run_name"] for r in rows]
    assert names == [*NAMES, "trial-0", "trial-2"]
    assert store["failed"] not in {r["run_id"] for r in rows}
    assert store["parent"] not in {r["run_id"] for r in rows}
    for row in rows[:4]:
        spec = RUNS[row["run_name"]]
        assert row["architecture"] == spec["architecture"]
        assert row["dataset_md5"] == MD5
        for key, value in spec["metrics"].items():
            assert row[key] == value, key
        expected = dict(zip(PARAMS, spec["bias"], strict=True)) if spec["bias"] else {}
        assert row["fit_bias_sigma"] == expected
    old = rows[3]
    assert old["missing"] == ["fit_bias_max_sigma", "latency_single_s", "throughput_per_s"]
    assert old["latency_single_s"] is None
    assert all(r["missing"] == [] for r in rows[:3])
    # gates: a promotion's verdict (the registered versions' tags for the runs that have one)
    assert rows[0]["version"] == "1"
    assert rows[0]["gates_passed"] == "4/4"
    assert rows[2]["version"] == "2"
    assert rows[2]["gates"]["fit_bias_max_sigma"] == "FAIL"
    assert rows[1]["version"] is None
    assert rows[1]["gates_passed"] == "4/4"
    assert old["gates"]["fit_bias_max_sigma"] == "missing"
    assert old["gates_passed"] == "3/4"


def test_pareto_fronts_of_accuracy_vs_parameters_and_latency(compared: dict[str, Any]) -> None:
    # trial-0 and trial-2 repeat runs 0 and 2: equal points, so they share the front
    assert compared["pareto"]["n_parameters"] == [
        NAMES[0],
        NAMES[1],
        NAMES[2],
        "trial-0",
        "trial-2",
    ]
    assert compared["pareto"]["latency_single_s"] == [NAMES[0], NAMES[2], "trial-0", "trial-2"]


def test_residual_patterns_of_each_architecture(compared: dict[str, Any]) -> None:
    res = compared["residuals"]
    assert res["runs"] == [NAMES[0], NAMES[1], NAMES[2], "trial-0", "trial-2"]
    assert res["skipped"] == {NAMES[3]: "no predictions_sample.npz artifact"}
    assert len(res["points"]) == 3
    assert res["inputs"] == INPUTS
    assert res["energy"] == "prompt"


def test_comparison_is_recorded_as_a_run_linking_the_compared_runs(
    compared: dict[str, Any], store: dict[str, Any]
) -> None:
    client = store["client"]
    rec = compared["comparison_run"]
    assert rec["experiment"] == "juno-surrogate-comparisons"
    run = client.get_run(rec["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags[tags.COMPARISON_OF] == "juno-surrogate"
    assert run.data.tags[tags.COMPARISON_RUNS].split(",") == [r["run_id"] for r in compared["rows"]]
    assert "| seed_mlp-400x400-silu-323k | seed_mlp |" in run.data.tags[tags.MLFLOW_NOTE]
    assert run.data.metrics["n_compared"] == 6
    files = {f.path for f in client.list_artifacts(rec["run_id"])}
    assert files == {"comparison.json", "comparison_report.png", "residuals.png"}
    local = Path(client.download_artifacts(rec["run_id"], "comparison.json", str(store["tmp"])))
    table = json.loads(local.read_text())
    assert [r["run_id"] for r in table["rows"]] == [r["run_id"] for r in compared["rows"]]
    assert table["residuals"]["curves"][NAMES[1]][0][5] == pytest.approx(
        3e-4 * np.sin(3 * CENTRES[5]), rel=1e-9
    )
    for png in ("comparison_report.png", "residuals.png"):
        head = Path(client.download_artifacts(rec["run_id"], png, str(store["tmp"]))).read_bytes()
        assert head[:8] == b"\x89PNG\r\n\x1a\n"
    # both experiments are model-development ones (MLflow 3's experiment kind)
    for name in ("juno-surrogate", "juno-surrogate-comparisons"):
        exp = client.get_experiment_by_name(name)
        assert exp.tags[tags.MLFLOW_EXPERIMENT_KIND] == "custom_model_development"


def test_sweep_trials_compared_and_the_parent_links_to_the_report(store: dict[str, Any]) -> None:
    code, out, err = _oscflow(
        store, "compare", "juno-surrogate", f"sweep={store['parent']}", "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["kind"] == "sweep"
    assert [r["run_id"] for r in result["rows"]] == store["trials"]
    parent = store["client"].get_run(store["parent"])
    assert parent.data.tags[tags.COMPARISON_RUN] == result["comparison_run"]["run_id"]
    assert result["comparison_run"]["run_id"] in parent.data.tags[tags.MLFLOW_NOTE]


def test_registered_model_versions_and_registry_show_columns(store: dict[str, Any]) -> None:
    code, out, err = _oscflow(store, "compare", "juno-spectrum", "--json", "record=false")
    assert code == 0, err
    result = json.loads(out)
    assert result["kind"] == "model"
    assert result["comparison_run"] is None
    assert [r["label"] for r in result["rows"]] == [f"v1 {NAMES[0]}", f"v2 {NAMES[2]}"]
    assert [r["p99_rel_dev_peak1"] for r in result["rows"]] == [4.0e-4, 3.0e-3]
    # the gates read the validation tags: v2's 0.25σ fails
    assert [r["gates"]["fit_bias_max_sigma"] for r in result["rows"]] == ["pass", "FAIL"]
    tmp = store["tmp"]
    out_, err_ = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out_), contextlib.redirect_stderr(err_):
        code = main(
            [
                "registry",
                "show",
                "juno-spectrum",
                f"tracking_uri={store['uri']}",
                f"state_dir={tmp}/state",
            ]
        )
    assert code == 0, err_.getvalue()
    text = out_.getvalue()
    header = next(line for line in text.splitlines() if "p99 |Δ|/exact" in line)
    for column in ("architecture", "params", "fit bias σ", "latency ms", "gates", "dataset md5"):
        assert column in header
    # v2: its training run's values; both versions on the front of accuracy vs parameters
    assert re.search(
        r"v2 pca_mlp-64-30k +pca_mlp +30,000 +3\.00e-03 +9\.00e-03 .* \*\+ +3/4 ", text
    )
    assert re.search(r"v1 seed_mlp-400x400-silu-323k +seed_mlp +322,800 +4\.00e-04 .* 4/4 ", text)


def test_a_version_without_its_training_run_is_listed_with_everything_missing(
    store: dict[str, Any],
) -> None:
    code, out, err = _oscflow(store, "compare", "orphan-spectrum", "--json", "record=false")
    assert code == 0, err
    (row,) = json.loads(out)["rows"]
    assert row["version"] == "1"
    assert row["architecture"] == "resmlp"
    assert row["missing"] == list(METRICS)
    assert row["gates_passed"] == "0/4"
    assert set(row["gates"].values()) == {"missing"}


def test_human_output_lists_missing_metrics(store: dict[str, Any]) -> None:
    code, out, err = _oscflow(
        store,
        "compare",
        "juno-surrogate",
        "record=false",
        "filter=\"tags.`oscflow.architecture` = 'seed_mlp'\"",
        "status=[FINISHED]",
    )
    assert code == 0, err
    assert (
        f"missing: {NAMES[3]} lacks fit_bias_max_sigma, latency_single_s, throughput_per_s" in out
    )
    row = next(line for line in out.splitlines() if line.startswith(NAMES[3]))
    assert "—" in row  # the missing values, not zeros


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("compare", "no-such-thing"), "no experiment or registered model named 'no-such-thing'"),
        (("compare",), "name: nothing to compare"),
        (("compare", "juno-surrogate", "sweep=0123abcd"), "'0123abcd' is not the parent run"),
        (("compare", "juno-spectrum", "sweep=0123abcd"), "is a registered model"),
        (
            ("compare", "juno-surrogate", 'filter="metrics.p99_rel_dev_peak1 < 0"'),
            "no runs of juno-surrogate match",
        ),
        (("compare", "juno-surrogate", "juno-spectrum"), "unexpected word 'juno-spectrum'"),
        (("compare", "juno-surrogate", 'filter="metrics.p99 <<< 1"'), "filter: MLflow cannot use"),
    ],
)
def test_bad_input_is_a_clear_error(
    store: dict[str, Any], args: tuple[str, ...], expected: str
) -> None:
    code, out, err = _oscflow(store, *args)
    assert code in (1, 2), (out, err)
    assert expected in err
    assert "Fix:" in err
    assert "Traceback" not in err
    if "no-such-thing" in args:
        assert "juno-surrogate" in err
        assert "juno-spectrum" in err
