"""The published Daya Bay fit's nuisance combination (experiments/dayabay/nuisances.py) and the
fit predictor that applies it to a nuisance surrogate (services/fit/predictors.py), on
synthetic columns: no official model, milliseconds. The official model's side (the columns,
the linearity against it, the published-configuration fit) is in tests/test_dayabay.py."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from oscflow.config import load, to_container
from oscflow.errors import ConfigError
from oscflow.experiments.dayabay import nuisances as nz

K = 7  # bins of the toy spectrum
RNG = np.random.default_rng(3)


def _order(n_exp: int = 3) -> tuple[nz.Nuisance, ...]:
    return (
        nz.Nuisance("g", "detector.global_normalization", 1.0, "norm"),
        *(nz.Nuisance(f"f{i}", f"x.spec_scale_{i:02d}", 0.0, "exp") for i in range(n_exp)),
    )


def _toy(batch: int = 4, n_exp: int = 3) -> tuple[Any, Any, Any]:
    """Columns of N = B + g·(I_snf + A·exp(Σ_i w_i F_i)): background B, an F-independent IBD
    part I_snf, and per bin the counts A fed by one neutrino energy between two segment edges
    (weights w = (1 − t, t) on them) — the structure for which the combination is exact."""
    b = RNG.uniform(10, 20, (batch, K))
    snf = RNG.uniform(1, 2, (batch, K))
    a = RNG.uniform(50, 100, (batch, K))
    w = np.zeros((batch, n_exp, K))
    edge = RNG.integers(0, n_exp - 1, K)
    t = RNG.uniform(-0.5, 1.5, K)  # beyond the edges too: extrapolation, a negative weight
    w[:, edge, np.arange(K)] = 1 - t
    w[:, edge + 1, np.arange(K)] = t
    seg = a[:, None] * w
    d_g = snf + a
    cols = np.concatenate([(b + d_g)[:, None], d_g[:, None], seg], axis=1)
    return cols, (b, snf, a, w), nz.Combination(_order(n_exp))


def test_combination_is_exact_for_its_structure() -> None:
    """Exact at nominal, in g, for a uniform F and for bins fed by one neutrino energy."""
    cols, (b, snf, a, w), comb = _toy()
    nominal = np.array([[1.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(comb(cols, np.repeat(nominal, 4, 0)), cols[:, 0], rtol=1e-15)
    g, f = 1.07, np.array([-0.3, 0.2, 0.05])
    values = np.repeat([[g, *f]], 4, 0)
    exact = b + g * (snf + a * np.exp(np.einsum("m,bmk->bk", f, w)))
    np.testing.assert_allclose(comb(cols, values), exact, rtol=1e-13)


def test_combination_jacobians_are_its_derivatives() -> None:
    """∂N/∂η analytic, and the chain rule through the columns (∂N/∂θ from ∂columns/∂θ)."""
    cols, _, comb = _toy()
    x = np.array([[0.96, 0.05, -0.1, 0.2]] * 4)
    jac = comb.jacobian(cols, x)
    assert jac.shape == (4, K, 4)
    for j in range(4):
        h = np.zeros(4)
        h[j] = 1e-6
        fd = (comb(cols, x + h) - comb(cols, x - h)) / 2e-6
        np.testing.assert_allclose(jac[:, :, j], fd, rtol=1e-7)
    direction = RNG.normal(size=cols.shape)
    chain = comb.chain(cols, x, direction[..., None])[..., 0]
    fd = (comb(cols + 1e-4 * direction, x) - comb(cols - 1e-4 * direction, x)) / 2e-4
    np.testing.assert_allclose(chain, fd, rtol=1e-7)


def test_bad_nuisance_configurations_are_refused() -> None:
    ok = {"official": "detector.global_normalization", "nominal": 1.0, "combine": "norm"}
    assert nz.parse({"g": ok})["g"].combine == "norm"
    with pytest.raises(ConfigError, match=r"experiment.nuisances.g.combine.*'mul' is unknown"):
        nz.parse({"g": {**ok, "combine": "mul"}})
    with pytest.raises(ConfigError, match=r"a norm nuisance is combined around 1"):
        nz.parse({"g": {**ok, "nominal": 0.0}})
    with pytest.raises(ConfigError, match=r"official.*is missing"):
        nz.parse({"g": {**ok, "official": ""}})
    with pytest.raises(ConfigError, match="more than one norm"):
        nz.parse({"g": ok, "h": ok})
    with pytest.raises(ConfigError, match=r"21 blocks of 546 bins, not 1 \+ 3"):
        nz.check_layout(21 * 546, 546, _order(2), "the surrogate")
    with pytest.raises(ValueError, match="2 nuisance values and 5 columns for 4 nuisances"):
        nz.Combination(_order())(np.ones((1, 5, K)), np.zeros((1, 2)))


def test_published_configuration_frees_every_official_free_parameter() -> None:
    """fit/experiment=dayabay_published frees the parameters of dayabay-model's
    parameters.free but the global normalisation, as the collaboration's fits do (21;
    tests/test_dayabay.py checks the paths against the model itself); the plug-in refuses a
    nuisance that is also a surrogate input."""
    from oscflow.experiments.dayabay.model import DayaBayExperiment

    cfg = load("fit", ["experiment=dayabay", "fit/experiment=dayabay_published"])
    assert len(cfg.free) == 21
    experiment = DayaBayExperiment(cfg.experiment)
    assert set(cfg.free) == set(experiment.official_paths) - {"global_norm"}
    assert len(set(experiment.official_paths.values())) == 22
    assert experiment.parameters["spec_scale_07"].kind == "nuisance"
    comb = experiment.nuisance_combination(21 * 546, 546)
    assert [n.name for n in comb.nuisances][:2] == ["global_norm", "spec_scale_00"]
    assert experiment.nuisance_combination(546, 546) is None
    with pytest.raises(ConfigError, match="2 blocks of 546 bins"):
        experiment.nuisance_combination(2 * 546, 546)
    bad = to_container(cfg.experiment)
    bad["nuisances"]["sin2_2th13"] = {"official": "a.b", "nominal": 0.0, "combine": "exp"}
    with pytest.raises(ConfigError, match=r"\['sin2_2th13'\] are also in experiment.parameters"):
        DayaBayExperiment(bad)


class _Inner:
    """A stand-in surrogate of the columns: each column linear in two inputs."""

    inputs = ("a", "b")
    _fixed: ClassVar[dict[str, float]] = {}
    surrogate = None
    exposure = None
    energy = "concatenated"

    def __init__(self, n_cols: int) -> None:
        self.base = RNG.uniform(50, 100, (n_cols, K))
        self.slope = RNG.uniform(-5, 5, (2, n_cols, K))

    def _cols(self, points: Any) -> Any:
        a, b = (np.atleast_1d(points[k])[:, None, None] for k in self.inputs)
        return self.base + a * self.slope[0] + b * self.slope[1]

    def reactors(self, points: Any) -> Any:
        cols = self._cols(points)
        return cols.reshape(len(cols), -1)

    def reactors_and_jacobian(self, points: Any) -> Any:
        cols = self._cols(points)
        jac = np.broadcast_to(np.moveaxis(self.slope, 0, -1), (*cols.shape, 2))
        return cols.reshape(len(cols), -1), jac.reshape(len(cols), -1, 2)

    def ranges(self) -> dict[str, tuple[float, float]]:
        return {"a": (0.0, 1.0), "b": (0.0, 1.0)}

    def info(self) -> dict[str, Any]:
        return {"kind": "surrogate"}


def test_combined_predictor_counts_and_jacobian() -> None:
    from oscflow.experiments.base import ParameterSpec
    from oscflow.services.fit.predictors import CombinedSurrogatePredictor

    order = _order()
    specs = {
        n.name: ParameterSpec(n.name, n.nominal, 0.01, 0.0, (-1.0, 2.0), "", "nuisance", "", {})
        for n in order
    }
    pred = CombinedSurrogatePredictor(
        _Inner(1 + len(order)), nz.Combination(order), specs, np.arange(K + 1.0)
    )
    assert pred.inputs == ("a", "b", "g", "f0", "f1", "f2")
    assert pred.ranges()["f1"] == (-1.0, 2.0)
    x = np.array([[0.3, 0.6, 1.02, 0.1, -0.05, 0.02], [0.5, 0.1, 0.98, -0.1, 0.0, 0.3]])
    points = {n: x[:, i] for i, n in enumerate(pred.inputs)}
    counts, jac = pred.reactors_and_jacobian(points)
    np.testing.assert_allclose(counts, pred.reactors(points), rtol=1e-14)
    assert jac.shape == (2, K, 6)
    for i, n in enumerate(pred.inputs):
        up = {**points, n: points[n] + 1e-6}
        down = {**points, n: points[n] - 1e-6}
        fd = (pred.reactors(up) - pred.reactors(down)) / 2e-6
        np.testing.assert_allclose(jac[:, :, i], fd, rtol=1e-6, atol=1e-6)
    # nuisances not given are nominal: the surrogate's own spectrum column
    only = pred.reactors({"a": x[:, 0], "b": x[:, 1]})
    np.testing.assert_allclose(only, pred.inner._cols({"a": x[:, 0], "b": x[:, 1]})[:, 0])
