"""The deposit_fold architecture's torch fold is the exact model's (physics/response_fold.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from oscflow.errors import ConfigError
from oscflow.physics.detector import DetectorConfig
from oscflow.physics.response_fold import fold_matrix
from oscflow.surrogate.architectures import Axis, build_physical
from oscflow.surrogate.architectures.deposit_fold import FOLD_PARAMETERS

EDGES = tuple(np.linspace(0.8, 8.8, 401))
NOMINAL = DetectorConfig()
DETECTOR = {k: getattr(NOMINAL, k) for k in FOLD_PARAMETERS}
AXES = (
    Axis("sin2_th13", 0.0185, 0.0255),
    Axis("escale", 0.985, 1.015),
    Axis("nl_p1", 0.07, 0.13),
    Axis("nl_p2", 0.6, 1.2),
    Axis("res_a", 0.0231, 0.0291),
)
OPTIONS = {"grid": {"lo": 0.4, "hi": 10.0, "step": 0.02}, "hidden": [8], "detector": DETECTOR}


def test_torch_fold_equals_the_exact_fold_anywhere_in_the_box() -> None:
    """Random deposit spectra and detector points inside the training box (corners included):
    the surrogate's windowed fold equals ``fold_matrix`` on the same u grid to 1e-6 per bin
    (float64; its windows end at 5σ, Φ(−5) = 3e-7), and is differentiable in the detector
    inputs."""
    net = build_physical("deposit_fold", AXES, EDGES, OPTIONS).double()
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.uniform(a.lo, a.hi, 6) for a in AXES])
    x[0, 1:] = [0.985, 0.13, 1.2, 0.0231]
    x[1, 1:] = [1.015, 0.07, 0.6, 0.0291]
    with torch.no_grad():
        net.net[-1].weight.normal_(0.0, 0.3)
    xt = torch.tensor(x, requires_grad=True)
    out = net(xt)
    with torch.no_grad():
        rho = net.rho_bar * (1.0 + net.net(net.scaler(xt[:, net.others])))
    u_edges = net.u_edges.double().numpy()
    for i in range(len(x)):
        det = dataclasses.replace(
            NOMINAL, **dict(zip(("escale", "nl_p1", "nl_p2", "res_a"), x[i, 1:], strict=True))
        )
        fold, rows = fold_matrix(u_edges, EDGES, det)
        ref = rho[i].numpy()[rows] @ fold
        np.testing.assert_allclose(out[i].detach().numpy(), ref, rtol=1e-6, atol=1e-9 * ref.sum())
    out[:, 200].sum().backward()
    assert xt.grad is not None
    assert np.all(np.abs(xt.grad[:, 1].numpy()) > 0)


def test_a_grid_too_narrow_for_the_energy_scale_range_is_refused() -> None:
    wide = (*AXES[:1], Axis("escale", 0.5, 1.5))
    with pytest.raises(ConfigError, match=r"model\.grid"):
        build_physical("deposit_fold", wide, EDGES, OPTIONS)
    with pytest.raises(ConfigError, match=r"model\.detector"):
        build_physical("deposit_fold", AXES, EDGES, {**OPTIONS, "detector": {}})
