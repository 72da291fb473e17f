"""The DVC pipeline end to end, in a fresh git repository made from this checkout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import NOMINAL, make_clone
from helpers import run as _run
from oscflow.config import load
from oscflow.data.simulate import read_pairs
from oscflow.experiments import load_experiment

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "name": "tiny",
    "simulate": {"n_pairs": 40000, "seed": 11, "chunk": 15000},
    "spectra": {
        "method": "matrix",
        "energy": "prompt",
        "sampler": "lhs",
        "seed": 12,
        "inputs": ["sin2_th12", "sin2_th13", "dm2_21", "dm2_32"],
        "splits": {"train": 64, "val": 16, "test": 16},
        "chunk": 40,
        "dtype": "float32",
    },
}
# One xdist worker: the tests build on each other's state of the clone, in order.
pytestmark = [pytest.mark.pipeline, pytest.mark.slow, pytest.mark.xdist_group("pipeline")]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clone(tmp_path_factory.mktemp("clone"), "tiny", TINY)


def _stages_run(log: str) -> set[str]:
    return {s for s in ("simulate", "spectra") if f"Running stage '{s}'" in log}


def test_repro_builds_the_datasets_then_does_nothing(clone: Path) -> None:
    log = _run(clone, "dvc", "repro", "spectra")
    assert _stages_run(log) == {"simulate", "spectra"}
    spectra = clone / "data/juno/tiny/spectra"
    meta = json.loads((spectra / "meta.json").read_text())
    assert meta["splits"] == {"train": 64, "val": 16, "test": 16}
    assert meta["inputs"] == TINY["spectra"]["inputs"]
    assert len(meta["bin_edges"]) == 401
    train = np.load(spectra / "train_spectra.npy", mmap_mode="r")
    params = np.load(spectra / "train_params.npy", mmap_mode="r")
    assert isinstance(train, np.memmap)
    assert train.shape == (64, 400)
    assert train.dtype == np.float32
    for j, name in enumerate(meta["inputs"]):
        lo, hi = meta["ranges"][name]
        assert lo <= params[:, j].min()
        assert params[:, j].max() <= hi
    # Seed 001's ranges: ±3σ, ±5σ for sin²θ13 (PDG 2022).
    assert meta["ranges"]["sin2_th13"] == pytest.approx([0.0220 - 5 * 0.0007, 0.0220 + 5 * 0.0007])
    assert meta["ranges"]["dm2_21"] == pytest.approx([7.53e-5 - 3 * 0.18e-5, 7.53e-5 + 3 * 0.18e-5])
    assert not list(clone.glob("data/juno/tiny/.*tmp"))

    again = _run(clone, "dvc", "repro", "spectra")
    assert _stages_run(again) == set()
    assert "Data and pipelines are up to date" in again


def test_stored_spectra_are_the_exact_model(clone: Path) -> None:
    """A stored spectrum equals the response-matrix predictor run independently on the stored
    MC pairs at the stored parameters (float32 storage precision)."""
    spectra = clone / "data/juno/tiny/spectra"
    meta = json.loads((spectra / "meta.json").read_text())
    params = np.load(spectra / "test_params.npy")
    stored = np.load(spectra / "test_spectra.npy")
    exp = load_experiment(load("predict", []).experiment)
    pairs = read_pairs(clone / "data/juno/tiny/pairs")
    pred = exp.predictor(np.array(meta["bin_edges"]), "prompt", "matrix", pairs)
    point = {k: params[:2, j] for j, k in enumerate(meta["inputs"])}
    out = pred.predict(
        point, exp.exposure(meta["exposure"]["days"], meta["exposure"]["efficiency"])
    )
    total = sum(out.values())
    mask = total > 0.01 * total.max()
    np.testing.assert_allclose(stored[:2][mask], total[mask], rtol=1e-5)
    assert set(NOMINAL) == set(meta["inputs"])


def test_config_change_reruns_only_the_affected_stages(clone: Path) -> None:
    tiny = clone / "conf/data/tiny.yaml"
    cfg = yaml.safe_load(tiny.read_text())
    cfg["spectra"]["splits"]["val"] = 24
    tiny.write_text(yaml.safe_dump(cfg))
    assert _stages_run(_run(clone, "dvc", "repro", "spectra")) == {"spectra"}
    meta = json.loads((clone / "data/juno/tiny/spectra/meta.json").read_text())
    assert meta["splits"]["val"] == 24

    juno = clone / "conf/experiment/juno.yaml"
    text = juno.read_text()
    assert "    res_b: 0.0082\n" in text
    juno.write_text(text.replace("    res_b: 0.0082\n", "    res_b: 0.0090\n"))
    assert _stages_run(_run(clone, "dvc", "repro", "spectra")) == {"simulate", "spectra"}

    juno.write_text(
        juno.read_text().replace(
            "rate_per_day: 0.8, rate_uncertainty: 0.01", "rate_per_day: 0.9, rate_uncertainty: 0.01"
        )
    )
    assert _stages_run(_run(clone, "dvc", "repro", "spectra")) == {"spectra"}
    assert "up to date" in _run(clone, "dvc", "status", "spectra")


def test_push_to_the_local_remote(clone: Path) -> None:
    _run(clone, "dvc", "push")
    store = clone / "dvcstore"
    assert store.is_dir()
    assert any(p.is_file() for p in store.rglob("*"))
    summary = json.loads(_run(clone, "oscflow", "summary", "--json", "data=tiny").splitlines()[-1])
    assert summary["spectra"]["splits"]["test"]["n_spectra"] == 16
    assert summary["dvc_remote"]["path"] == str(store.resolve())
    assert summary["pairs"]["dvc"]["md5"].endswith(".dir")
