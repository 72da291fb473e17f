"""``FitModel.expected_and_jacobian``: the batched fitter's model. Against central finite
differences of ``expected_batch`` at random points, for a float64 surrogate (torch autograd)
and for an exact predictor (its own finite differences, another step), nuisances analytic."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from helpers import CHEAP_FIT
from oscflow.config import load
from oscflow.registry.reactors import SurrogateReactors
from oscflow.services.fit.model import FitModel, FitParameter
from oscflow.services.fit.predictors import SurrogatePredictor
from oscflow.surrogate.model import FastSurrogate, SpectrumSurrogate, SurrogateSpec

INPUTS = ("sin2_th12", "sin2_th13", "dm2_21", "dm2_32")
RANGES = ((0.27, 0.35), (0.018, 0.026), (7.0e-5, 8.1e-5), (2.35e-3, 2.55e-3))


def central_differences(model: FitModel, x: np.ndarray, rel: float) -> np.ndarray:
    """(M, K, P) from expected_batch, step ``rel`` × each parameter's step (its σ)."""
    out = np.zeros((*model.expected_batch(x).shape, x.shape[1]))
    for j, p in enumerate(model.parameters):
        h = rel * p.step
        up, down = x.copy(), x.copy()
        up[:, j] += h
        down[:, j] -= h
        out[:, :, j] = (model.expected_batch(up) - model.expected_batch(down)) / (2 * h)
    return out


def random_points(model: FitModel, m: int, seed: int) -> np.ndarray:
    """Uniform within ±3 steps of the start, inside the limits (the surrogate's: its range)."""
    rng = np.random.default_rng(seed)
    lo, hi = np.array([p.limits for p in model.parameters]).T
    step = np.array([p.step for p in model.parameters])
    x = model.starts() + step * rng.uniform(-3, 3, (m, len(lo)))
    return np.clip(x, lo + 0.01 * (hi - lo), hi - 0.01 * (hi - lo))


def assert_columns_close(jac: np.ndarray, ref: np.ndarray, rtol: float) -> None:
    """Each column (parameter) within ``rtol`` of its largest |entry| over points and bins."""
    scale = np.abs(ref).max(axis=(0, 1))
    assert (scale > 0).all()
    err = np.abs(jac - ref).max(axis=(0, 1)) / scale
    assert (err < rtol).all(), err


def surrogate_model(activation: str) -> FitModel:
    spec = SurrogateSpec(
        experiment="juno",
        inputs=INPUTS,
        ranges=RANGES,
        bin_edges=tuple(np.linspace(0.8, 8.8, 41)),
        energy="prompt",
        exposure={"days": 100.0, "efficiency": 1.0},
        architecture="seed_mlp",
        options={"hidden": [32, 32], "activation": activation},
    )
    import torch

    torch.manual_seed(3)
    net = SpectrumSurrogate(spec)
    with torch.no_grad():  # counts of a few thousand per bin, as a trained model's
        net.output_scaler.mean.fill_(2000.0)
        net.output_scaler.std.fill_(300.0)
    reactors = SurrogateReactors(FastSurrogate(net), "test")
    predictor = SurrogatePredictor(reactors, SimpleNamespace(days=365.0, efficiency=0.8))
    rng = np.random.default_rng(0)
    params = [
        FitParameter(n, (lo + hi) / 2, (hi - lo) / 10, (lo, hi))
        for n, (lo, hi) in zip(INPUTS, RANGES, strict=True)
    ]
    params += [
        FitParameter("flux_norm", 1.0, 0.02, (0.5, 1.5), prior=(1.0, 0.02), kind="flux"),
        FitParameter("bkg_a", 1.0, 0.1, (0.0, 3.0), prior=(1.0, 0.1), kind="background"),
        FitParameter("bkg_b", 1.0, 0.1, (0.0, 3.0), fixed=True, kind="background"),
    ]
    backgrounds = {"a": rng.uniform(10, 50, 40), "b": rng.uniform(1, 5, 40)}
    return FitModel(predictor, params, backgrounds)


def test_surrogate_jacobian_is_autograd_in_float64_and_matches_finite_differences() -> None:
    model = surrogate_model("silu")
    x = random_points(model, 64, seed=1)
    mu, jac = model.expected_and_jacobian(x)
    assert mu.dtype == jac.dtype == np.float64
    assert jac.shape == (64, 40, len(model.names))
    np.testing.assert_allclose(mu, model.expected_batch(x), rtol=1e-13)
    # float64 network: central differences at 1e-6 of the range are good to ~1e-9
    assert_columns_close(jac, central_differences(model, x, 1e-5), rtol=1e-6)
    # nuisances are analytic: ∂μ/∂flux = reactors, ∂μ/∂α_b = background_b
    i = model.index
    reactors = model.predictor.reactors({n: x[:, i[n]] for n in INPUTS})
    np.testing.assert_allclose(jac[:, :, i["flux_norm"]], reactors, rtol=1e-13)
    np.testing.assert_array_equal(
        jac[:, :, i["bkg_a"]], np.broadcast_to(model.backgrounds["a"], (64, 40))
    )
    # free_only zeroes the fixed background's column
    _, free_jac = model.expected_and_jacobian(x, free_only=True)
    assert (free_jac[:, :, i["bkg_b"]] == 0).all()
    np.testing.assert_array_equal(free_jac[:, :, : i["bkg_b"]], jac[:, :, : i["bkg_b"]])


def test_relu_surrogate_jacobian_matches_finite_differences_off_the_kinks() -> None:
    """A ReLU network is piecewise linear: away from a kink, central differences are exact."""
    model = surrogate_model("relu")
    x = random_points(model, 64, seed=2)
    assert_columns_close(
        model.expected_and_jacobian(x)[1], central_differences(model, x, 1e-7), 1e-5
    )


def test_exact_predictor_jacobian_is_batched_central_differences() -> None:
    cfg = load("fit", CHEAP_FIT)
    from oscflow.services.fit.setup import setup

    model = setup(cfg).model
    assert not hasattr(model.predictor, "reactors_and_jacobian")
    x = random_points(model, 16, seed=3)
    calls: list[int] = []
    reactors = model.predictor.reactors

    def counting(points):  # type: ignore[no-untyped-def]
        calls.append(max(np.size(v) for v in points.values()))
        return reactors(points)

    model.predictor.reactors = counting  # type: ignore[method-assign]
    mu, jac = model.expected_and_jacobian(x, free_only=True)
    free_inputs = [n for n in model._physics if n in model.free]
    assert calls == [16] * (1 + 2 * len(free_inputs))  # batched over the points
    model.predictor.reactors = reactors  # type: ignore[method-assign]
    ref = central_differences(model, x, 3e-4)  # another step than FD_STEP = 1e-3
    for j, p in enumerate(model.parameters):
        if p.fixed:
            assert (jac[:, :, j] == 0).all()
        else:
            assert_columns_close(jac[:, :, j : j + 1], ref[:, :, j : j + 1], 1e-5)
    np.testing.assert_allclose(mu, model.expected_batch(x), rtol=1e-13)


def test_a_wrong_number_of_columns_is_refused() -> None:
    model = surrogate_model("silu")
    with pytest.raises(ValueError, match="columns"):
        model.expected_and_jacobian(np.zeros((3, 2)))


@pytest.mark.parametrize("statistic", ["poisson", "covariance"])
def test_analytic_cost_derivatives_and_fit(statistic: str) -> None:
    """derivatives=analytic (services/fit/derivatives.py): the gradient and Hessian of the fit's
    cost equal its central differences (priors, a linear normalisation, a fixed background
    included; the covariance χ² through its own exact derivatives), and MIGRAD + HESSE with
    them find MINUIT's numerical fit (values and errors) in a fraction of the calls."""
    from oscflow.services.fit.derivatives import CostDerivatives
    from oscflow.services.fit.minimize import cost_function, minimize
    from oscflow.stats.covariance import CNPCovariance

    base = surrogate_model("silu")
    rng = np.random.default_rng(4)
    basis = rng.standard_normal((40, 5)) * 30.0
    # a fixed parameter between free ones: iminuit 2.33 reads a user Hessian in its own
    # numbering of the free parameters (CostDerivatives.minuit_hessian)
    params = [replace(p, fixed=True) if p.name == "dm2_21" else p for p in base.parameters]
    model = FitModel(
        base.predictor, params, base.backgrounds, {"covariance": CNPCovariance(basis @ basis.T)}
    )
    truth = random_points(model, 1, seed=5)[0]
    data = rng.poisson(model.expected(truth)).astype(float)
    exact = CostDerivatives(model, data, statistic)
    cost = cost_function(model, data, statistic)
    x = random_points(model, 1, seed=6)[0]
    step = np.array([p.step for p in model.parameters]) * 1e-4
    free = np.array([not p.fixed for p in model.parameters])
    eye = np.eye(len(x))
    fd = np.array(
        [(cost(x + h * e) - cost(x - h * e)) / (2 * h) for h, e in zip(step, eye, strict=True)]
    )
    np.testing.assert_allclose(exact.gradient(x)[free], fd[free], rtol=1e-6, atol=1e-6)
    grad = exact.gradient
    fd2 = np.array(
        [(grad(x + h * e) - grad(x - h * e)) / (2 * h) for h, e in zip(step, eye, strict=True)]
    )
    hess = exact.hessian(x)
    both = np.ix_(free, free)
    np.testing.assert_allclose(hess[both], fd2[both], rtol=1e-4, atol=1e-6 * np.abs(hess).max())

    numerical = minimize(model, data, statistic, prescan=False)
    analytic = minimize(model, data, statistic, prescan=False, derivatives="analytic")
    assert numerical.valid
    assert analytic.valid
    errors = numerical.errors[free]
    shift = np.abs(analytic.values[free] - numerical.values[free]) / errors
    assert shift.max() < 0.01, shift
    np.testing.assert_allclose(analytic.errors[free], errors, rtol=0.01)
    assert analytic.fval <= numerical.fval + 1e-3
    calls = analytic.nfcn + analytic.ngrad + analytic.nhessian
    assert calls < numerical.nfcn / 3, (calls, numerical.nfcn)
