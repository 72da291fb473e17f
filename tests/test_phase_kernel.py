"""The ``phase_kernel`` architecture: its structure, its refusals, and the claim of its
JSNS² configuration that every L/E of the exact model lies inside the ω range it learns on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from oscflow.config import bin_edges, load
from oscflow.experiments import load_experiment
from oscflow.physics.oscillation_models.sterile_appearance import PHASE_PER_M
from oscflow.surrogate.model import FastSurrogate, SpectrumSurrogate, SurrogateSpec

OPTIONS = yaml.safe_load((Path(__file__).parents[1] / "conf/model/phase_kernel.yaml").read_text())


def _spec(**options: object) -> SurrogateSpec:
    return SurrogateSpec(
        experiment="jsns2",
        inputs=("dm2_41", "escale"),
        ranges=((0.1, 100.0), (0.97, 1.03)),
        bin_edges=tuple(np.linspace(20.0, 60.0, 21)),
        energy="prompt",
        exposure={"days": 44.505, "efficiency": 1.0, "free_protons": 1.2e30},
        architecture="phase_kernel",
        options={**OPTIONS, "hidden": [8], **options},
        log_inputs=("dm2_41",),
    )


def test_no_signal_without_oscillation_and_the_same_in_float64() -> None:
    """N_b(Δm² = 0) = 0 exactly, whatever was learned; the fast float64 path (fits) agrees with
    the module."""
    torch.manual_seed(0)
    spectra = np.abs(np.random.default_rng(0).normal(50.0, 10.0, (64, 20)))
    model = SpectrumSurrogate(_spec(), spectra)
    x = torch.tensor([[0.0, 0.98], [0.0, 1.02], [5.0, 1.0]])
    with torch.no_grad():
        y = model(x)
    assert torch.all(y[:2] == 0.0)
    assert torch.all(y[2] != 0.0)
    fast = FastSurrogate(model).float64()(x.double())
    np.testing.assert_allclose(fast.numpy(), y.numpy(), rtol=1e-5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"phase_input": "dm2_32"}, r"model\.phase_input"),
        ({"n_omega": 40}, r"set model\.n_omega >= 95"),
        ({"omega": [4.2, 0.9]}, "0 < lo < hi"),
    ],
)
def test_bad_options_are_refused_with_the_fix(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SpectrumSurrogate(_spec(**change))


def test_counts_architecture_refuses_a_log_output_transform() -> None:
    spec = SurrogateSpec(**{**_spec().__dict__, "output_transform": "log"})
    with pytest.raises(ValueError, match=r"set model\.output_transform=standard"):
        SpectrumSurrogate(spec)


def test_jsns2_l_over_e_lies_inside_the_configured_omega_range() -> None:
    """The exact JSNS² near-detector spectrum is Σ over baselines L and neutrino energies E of
    sin²(ω Δm²/2), ω = 2 · 1.26693 · L/E: the architecture can represent it only if every
    (L, E) that contributes to a bin (≥ 1e-6 of the bin) has ω inside model.omega, at every
    energy scale of the dataset (conf/data/jsns2_demo.yaml: 1 ± 0.03)."""
    cfg = load("predict", ["experiment=jsns2"])
    experiment = load_experiment(cfg.experiment)
    predictor = experiment.predictor(bin_edges(cfg.binning), "prompt")
    base = experiment.baselines
    lengths = base.baselines[base.weights >= 1e-6 * base.weights.max()]
    lo, hi = np.inf, 0.0
    for escale in (0.97, 1.0, 1.03):
        contribution = predictor._rate[:, None] * predictor.matrix(escale)  # (E nodes, bins)
        used = (contribution >= 1e-6 * contribution.sum(axis=0)).any(axis=1)
        energies = predictor._nodes[used]
        lo = min(lo, 2 * PHASE_PER_M * lengths.min() / energies.max())
        hi = max(hi, 2 * PHASE_PER_M * lengths.max() / energies.min())
    omega_lo, omega_hi = OPTIONS["omega"]
    assert omega_lo <= lo < hi <= omega_hi, (lo, hi)
    assert lo - omega_lo < 0.2  # a margin, not a blanket range
    assert omega_hi - hi < 0.3
