"""The mass-ordering service end to end on the session's tiny surrogate pair (v1 normal, v2
inverted ordering): refused without a pair, the pair promoted, the study recorded as one MLflow
run linked to the version, and the statistic's properties that hold for any model — Δχ² of the
wrong ordering ≥ 0 and non-decreasing with exposure (min_θ k·D(θ) + P(θ) with D ≥ 0 cannot
decrease with k), and toys that follow the Asimov value: median ≈ T₀, width ≈ 2√T₀ (Qian et al.,
PRD 86, 113011 (2012); Blennow et al., JHEP 03 (2014) 028)."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from oscflow.cli import main

pytestmark = pytest.mark.slow  # the registered_surrogate fixture trains two tiny models


def _oscflow(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def r(surrogate: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    registered_surrogate = surrogate
    monkeypatch.setenv("OSCFLOW_CONFIG_DIR", f"{registered_surrogate['root']}/conf")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registered_surrogate["tracking_uri"])
    client = MlflowClient(registered_surrogate["tracking_uri"])
    common = [
        f"paths.root_dir={registered_surrogate['root']}",
        "data=ttrain",
        f"logger.tracking_uri={registered_surrogate['tracking_uri']}",
    ]
    return {**registered_surrogate, "client": client, "common": common}


def test_nmo_needs_a_pair_then_runs_and_records_on_the_promoted_pair(r: dict[str, Any]) -> None:
    name, v1, v2 = r["name"], r["version"], r["io_version"]
    code, _, err = _oscflow("nmo", f"model_uri=models:/{name}/{v1}", "nmo.toys=0", *r["common"])
    assert code == 1
    assert "covers only the normal ordering" in err
    assert "--pair" in err
    assert "data=<dataset>_inverted" in err

    code, _, err = _oscflow(
        "registry", "promote", name, v1, "--pair", v1, "--force", "--reason", "t"
    )
    assert code == 1
    assert "its own pair" in err
    code, out, err = _oscflow(
        "registry", "promote", name, v1, "--pair", v2, "--force", "--reason", "tiny pair", "--json"
    )
    assert code == 0, err
    promoted = json.loads(out)
    assert promoted["pair"]["orderings"] == {v1: "normal", v2: "inverted"}
    client = r["client"]
    assert client.get_model_version(name, v1).tags["oscflow.pair.inverted"] == v2
    assert client.get_model_version(name, v2).tags["oscflow.pair.normal"] == v1
    assert client.get_model_version(name, v2).tags["oscflow.ordering"] == "inverted"
    assert client.get_registered_model(name).aliases["champion"] == int(v1)

    code, out, err = _oscflow(
        "nmo",
        "--json",
        f"model_uri=models:/{name}@champion",
        "nmo.toys=200",
        "nmo.chunk=150",  # two chunks per ordering: each with its own seeds
        "nmo.asimov_days=[365.25,2191.5]",
        # oscillation fixed: a 3-epoch net cannot resolve |Δm²32| (its fits run to the training
        # range's edge); the nuisances (flux, backgrounds) are fitted, as in every study
        "free=[]",
        *r["common"],
    )
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["partner_uri"]["inverted"] == f"models:/{name}/{v2}"
    rows = {(a["true_ordering"], a["days"]): a for a in result["asimov"]}
    for truth in ("normal", "inverted"):
        short, long = rows[(truth, 365.25)], rows[(truth, 2191.5)]
        assert short["predictor"] == "surrogate"
        assert 0 <= short["delta_chi2_wrong"] <= long["delta_chi2_wrong"]
        t = np.asarray(result["toys"][truth]["values"])
        assert result["toys"][truth]["n_failed"] == 0
        assert len(t) == 200
        t0 = long["delta_chi2_wrong"]
        sign = 1 if truth == "normal" else -1
        # toys around the Asimov value: median T₀, width 2√T₀ (±15 %, 200 toys)
        assert abs(np.median(sign * t) - t0) < 0.25 * 2 * np.sqrt(t0)
        assert np.std(t, ddof=1) == pytest.approx(2 * np.sqrt(t0), rel=0.15)
    # each ordering's toys at its own PDG 2022 |Δm²32| (conf/experiment/juno.yaml: by_ordering)
    assert result["toys"]["normal"]["truth"]["dm2_32"] == pytest.approx(2.453e-3)
    assert result["toys"]["inverted"]["truth"]["dm2_32"] == pytest.approx(2.536e-3)
    sens = result["sensitivity"]["true_normal"]
    assert sens["n_true"] == len(result["toys"]["normal"]["values"])

    run = client.get_run(result["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["oscflow.service"] == "nmo"
    assert run.data.tags["oscflow.model.version"] == v1
    assert f"models:/{name}/{v2}" in run.data.tags["oscflow.nmo.pair"]
    files = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"nmo_result.json", "nmo_asimov_vs_exposure.png", "nmo_toys.png"} <= files
