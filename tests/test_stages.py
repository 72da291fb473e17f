"""Stage commands in-process: detector parameters as surrogate inputs, atomic outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from oscflow.cli import main
from oscflow.config import load
from oscflow.data.simulate import read_pairs
from oscflow.experiments import load_experiment

TINY = [
    "data.simulate.n_pairs=30000",
    "data.simulate.chunk=10000",
    "data.spectra.splits.train=24",
    "data.spectra.splits.val=4",
    "data.spectra.splits.test=4",
    "data.spectra.chunk=10",
]


def test_detector_parameters_as_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """escale and res_a sampled beside the oscillation parameters; the spectrum's mean energy
    must follow the sampled energy scale (events move up by the scale factor, other inputs
    held fixed in a linear fit), and be exactly the truth model at the sampled inputs."""
    root = [f"paths.root_dir={tmp_path}", *TINY]
    assert main(["simulate", *root]) == 0
    inputs = "data.spectra.inputs=[sin2_th12,sin2_th13,dm2_21,dm2_32,escale,res_a]"
    assert main(["spectra", *root, inputs]) == 0
    capsys.readouterr()
    out = tmp_path / "data/juno/demo/spectra"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["inputs"][-2:] == ["escale", "res_a"]
    assert meta["ranges"]["escale"] == pytest.approx([0.985, 1.015])
    params = np.load(out / "train_params.npy")
    spectra = np.load(out / "train_spectra.npy").astype(np.float64)
    centres = 0.5 * (np.array(meta["bin_edges"][1:]) + np.array(meta["bin_edges"][:-1]))
    mean_e = spectra @ centres / spectra.sum(axis=1)
    # Linear fit of the mean prompt energy on all inputs: ∂⟨E⟩/∂escale ≈ ⟨E⟩ (a pure rescale).
    design = np.column_stack([np.ones(len(params)), (params - params.mean(0)) / params.std(0)])
    coef, *_ = np.linalg.lstsq(design, mean_e, rcond=None)
    slope = coef[5] / params[:, 4].std()
    assert 0.5 * mean_e.mean() < slope < 1.5 * mean_e.mean()
    # And exactly: the stored spectra are the response-matrix predictor at the stored inputs.
    exp = load_experiment(load("predict", []).experiment)
    pairs = read_pairs(tmp_path / "data/juno/demo/pairs")
    pred = exp.predictor(np.array(meta["bin_edges"]), "prompt", "matrix", pairs)
    point = {k: params[:3, j] for j, k in enumerate(meta["inputs"])}
    ref = sum(
        pred.predict(
            point, exp.exposure(meta["exposure"]["days"], meta["exposure"]["efficiency"])
        ).values()
    )
    mask = ref > 0.01 * ref.max()
    np.testing.assert_allclose(spectra[:3][mask], ref[mask], rtol=1e-5)
    assert sorted(p.name for p in tmp_path.joinpath("data/juno/demo").iterdir()) == [
        "pairs",
        "spectra",
    ]


def test_rerun_replaces_the_dataset_atomically(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = [f"paths.root_dir={tmp_path}", *TINY]
    assert main(["simulate", *root]) == 0
    first = np.load(tmp_path / "data/juno/demo/pairs/enu.npy")
    assert main(["simulate", *root, "data.simulate.seed=99"]) == 0
    capsys.readouterr()
    second = np.load(tmp_path / "data/juno/demo/pairs/enu.npy")
    assert first.shape == second.shape
    assert not np.array_equal(first, second)
    leftovers = [p.name for p in (tmp_path / "data/juno/demo").iterdir() if p.name.startswith(".")]
    assert leftovers == []
