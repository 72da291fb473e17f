"""The experiment contract (``experiments/base.py``): the same checks against every registered
experiment and a minimal stub plug-in defined here, pyhf-style (one parametrised fixture).

Cheap by construction: Daya Bay's official model is never built (its predictor builds it on
first use only; the checks that would need it are marked per plug-in, not run for Daya Bay);
JUNO's prompt-energy predictor runs on 20 000 MC pairs.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import ArrayLike, NDArray

from oscflow.config import bin_edges, load
from oscflow.errors import ConfigError
from oscflow.experiments import Experiment, load_experiment
from oscflow.experiments.base import (
    check_exposure,
    check_oscillation_parameters,
    parameter_specs,
)
from oscflow.physics import oscillation_models
from oscflow.physics.rates import Exposure

CONF = Path(__file__).resolve().parents[1] / "conf" / "experiment"


# ----------------------------------------------------------------------------- a minimal stub


class _StubPredictor:
    """Counts of a box spectrum (100 events per bin per day) times the 3+1 appearance
    probability at a point baseline of 30 m and 40 MeV."""

    groups = ("signal",)
    detector_parameters: tuple[str, ...] = ()

    def __init__(self, edges: ArrayLike, energy: str) -> None:
        self.edges = np.asarray(edges, dtype=np.float64)
        self.energy = energy
        self.model = oscillation_models.get("sterile_3p1_appearance")
        self.parameters = self.model.parameters

    def predict(
        self, params: Mapping[str, ArrayLike], exposure: Exposure
    ) -> dict[str, NDArray[np.float64]]:
        cols = {k: np.atleast_1d(np.asarray(params[k], float)) for k in self.parameters}
        p = self.model.propagator(np.array([40.0]), cols, None)(0.030)  # (B, 1)
        k = self.edges.size - 1
        return {"signal": 100.0 * exposure.days * p * np.ones((1, k))}


@dataclasses.dataclass(frozen=True)
class _StubSettings:
    ordering: str = "normal"
    matter: bool = False


class StubExperiment(Experiment):
    """The least a plug-in must write: parameters, exposure, one predictor, no backgrounds."""

    name = "stub"
    energy_variables = ("prompt",)
    methods = ("matrix",)

    def __init__(self) -> None:
        self.cfg = {"name": "stub", "oscillation": {"model": "sterile_3p1_appearance"}}
        self.parameters = parameter_specs(
            {
                "sin2_2th_mue": {"nominal": 0.01, "sigma": 0.01, "bounds": [0, 1], "source": "toy"},
                "dm2_41": {"nominal": 1.0, "sigma": 1.0, "bounds": [0, 100], "source": "toy"},
            }
        )
        check_oscillation_parameters(
            self.parameters, oscillation_models.get(self.oscillation_model)
        )
        self.settings = _StubSettings()

    def with_ordering(self, ordering: str) -> StubExperiment:
        if ordering != "normal":
            raise ConfigError("orderings", "one ordering only", "set orderings=false")
        return self

    def exposure(self, days: float, efficiency: float) -> Exposure:
        check_exposure(days, efficiency)
        return Exposure(days=days, efficiency=efficiency)

    def source_names(self) -> tuple[str, ...]:
        return ("signal",)

    def predictor(
        self, edges: ArrayLike, energy: str, method: str, pairs: Any = None
    ) -> _StubPredictor:
        del pairs
        if energy not in self.energy_variables or method not in self.methods:
            raise ConfigError("energy", f"{energy!r}/{method!r} unknown", "use prompt/matrix")
        return _StubPredictor(edges, energy)

    def background_spectra(
        self, edges: NDArray[np.float64], days: float, energy: str
    ) -> dict[str, NDArray[np.float64]]:
        del edges, days, energy
        return {}


# ----------------------------------------------------------------------------- the plug-ins


@dataclasses.dataclass
class Plugin:
    """An experiment under test with the config it came from and what is cheap to check."""

    experiment: Experiment
    edges: NDArray[np.float64]
    days: float
    efficiency: float
    params: dict[str, float]


def _registered(name: str) -> Plugin:
    cfg = load("predict", [f"experiment={name}"])
    return Plugin(
        experiment=load_experiment(cfg.experiment),
        edges=bin_edges(cfg.binning),
        days=float(cfg.exposure.days),
        efficiency=float(cfg.exposure.efficiency),
        params={str(k): float(v) for k, v in cfg.params.items()},
    )


REGISTERED = sorted(p.stem for p in CONF.glob("*.yaml"))
NAMES = [*REGISTERED, "stub"]
# Predicting with Daya Bay's exact predictor builds the collaboration's model (~30 s):
# tests/test_dayabay.py checks its predictions against the official model's own.
PREDICT_HERE = [n for n in NAMES if n != "dayabay"]


@pytest.fixture(scope="module", params=NAMES)
def plugin(request: pytest.FixtureRequest) -> Plugin:
    if request.param == "stub":
        stub = StubExperiment()
        return Plugin(
            stub, np.linspace(20, 60, 5), 10.0, 1.0, {"sin2_2th_mue": 0.01, "dm2_41": 1.0}
        )
    return _registered(request.param)


@pytest.fixture(scope="module")
def pairs_loader(plugin: Plugin) -> Any:
    """A loader of a few MC pairs (for experiments whose predictor needs them), counting calls."""
    calls: list[int] = []

    def load_pairs() -> tuple[Any, str]:
        calls.append(1)
        return plugin.experiment.simulate_pairs(20_000, seed=3), "simulated"

    load_pairs.calls = calls  # type: ignore[attr-defined]
    return load_pairs


def test_every_config_is_a_registered_plugin() -> None:
    """Each conf/experiment/<name>.yaml names the plug-in module <name>."""
    assert {"juno", "dayabay", "jsns2"} <= set(REGISTERED)
    for name in REGISTERED:
        assert load("predict", [f"experiment={name}"]).experiment.name == name


def test_identity_and_parameter_space(plugin: Plugin) -> None:
    """A name, the config node, and parameters with a source, finite nominal inside bounds."""
    exp = plugin.experiment
    assert isinstance(exp, Experiment)
    assert exp.cfg["name"] == exp.name
    assert exp.parameters
    for name, spec in exp.parameters.items():
        assert spec.name == name
        # nuisance: a free fit parameter without prior (Daya Bay's spectrum scales)
        assert spec.kind in ("oscillation", "detector", "nuisance")
        assert spec.source, f"{exp.name}.{name} has no source"
        assert np.isfinite(spec.nominal)
        assert spec.sigma >= 0
        assert spec.check(spec.nominal) == spec.nominal
        lo, hi = spec.sampling_range
        assert lo <= spec.nominal <= hi
    assert exp.validate_params(plugin.params) == plugin.params
    with pytest.raises(ConfigError, match="no parameter"):
        exp.validate_params({"not_a_parameter": 1.0})


def test_oscillation_model_is_registered_and_its_parameters_are_predicted(
    plugin: Plugin,
) -> None:
    """The named model exists; the predictor takes every oscillation parameter."""
    exp = plugin.experiment
    model = oscillation_models.get(exp.oscillation_model)
    oscillation = {k for k, s in exp.parameters.items() if s.kind == "oscillation"}
    if exp.name != "dayabay":  # the official model has its own parametrisation (its paths)
        assert oscillation == set(model.parameters)
    for energy in exp.energy_variables:
        for method in exp.methods:
            if exp.needs_pairs(energy, method):
                continue
            predictor = exp.predictor(plugin.edges, energy, method, None)
            assert oscillation <= set(predictor.parameters)
            assert set(predictor.detector_parameters) <= set(predictor.parameters)


def test_orderings(plugin: Plugin) -> None:
    """``with_ordering`` answers each of ``orderings`` and refuses the others."""
    exp = plugin.experiment
    assert exp.settings.ordering in exp.orderings
    for ordering in exp.orderings:
        assert exp.with_ordering(ordering).settings.ordering == ordering
    for other in {"normal", "inverted"} - set(exp.orderings):
        with pytest.raises((ConfigError, ValueError)):
            exp.with_ordering(other)


def test_exposure(plugin: Plugin) -> None:
    """The configured exposure is accepted; a negative one is a ConfigError."""
    exp = plugin.experiment
    e = exp.exposure(plugin.days, plugin.efficiency)
    assert isinstance(e, Exposure)
    assert e.proton_seconds > 0
    with pytest.raises(ConfigError, match=re.escape("exposure.days")):
        exp.exposure(-1.0, plugin.efficiency)


def test_unknown_energy_or_method_is_a_config_error(plugin: Plugin) -> None:
    exp = plugin.experiment
    assert exp.energy_variables
    assert exp.methods
    with pytest.raises(ConfigError):
        exp.predictor(plugin.edges, "no_such_energy", exp.methods[0], None)
    with pytest.raises(ConfigError):
        exp.predictor(plugin.edges, exp.energy_variables[0], "no_such_method", None)


def test_exact_predictor_loads_pairs_exactly_when_needed(plugin: Plugin, pairs_loader: Any) -> None:
    """The one entry point asks for MC pairs iff ``needs_pairs`` (no copy of the rule)."""
    exp = plugin.experiment
    for energy in exp.energy_variables:
        for method in exp.methods:
            before = len(pairs_loader.calls)
            predictor, origin = exp.exact_predictor(plugin.edges, energy, method, pairs_loader)
            need = exp.needs_pairs(energy, method)
            assert len(pairs_loader.calls) - before == int(need)
            assert (origin is not None) == need
            assert predictor.energy == energy
            np.testing.assert_array_equal(predictor.edges, plugin.edges)
            if need:  # without a loader: refused, not silently simulated
                with pytest.raises(ConfigError, match="pairs"):
                    exp.exact_predictor(plugin.edges, energy, method, None)


@pytest.mark.parametrize("plugin", PREDICT_HERE, indirect=True)
def test_prediction_by_source(plugin: Plugin, pairs_loader: Any) -> None:
    """Nominal prediction: the reported sources, finite non-negative counts, a batch equal to
    its rows predicted one by one."""
    exp = plugin.experiment
    energy, method = exp.energy_variables[0], exp.methods[0]
    predictor, _ = exp.exact_predictor(plugin.edges, energy, method, pairs_loader)
    exposure = exp.exposure(plugin.days, plugin.efficiency)
    pred = exp.predict(plugin.params, exposure, predictor)
    assert list(pred.by_source) == list(exp.source_names())
    k = plugin.edges.size - 1
    for counts in pred.by_source.values():
        assert counts.shape == (1, k)
        assert np.all(np.isfinite(counts))
        assert np.all(counts >= 0)
    assert pred.counts.sum() > 0
    batch = {n: np.array([v, v, v]) for n, v in plugin.params.items()}
    first = next(iter(plugin.params))
    batch[first] = batch[first] * np.array([1.0, 0.5, 0.25])
    together = exp.predict(batch, exposure, predictor, backgrounds=False).counts
    for i in range(3):
        one = {n: float(v[i]) for n, v in batch.items()}
        alone = exp.predict(one, exposure, predictor, backgrounds=False).counts
        np.testing.assert_allclose(together[i], alone[0], rtol=1e-12)
    backgrounds = exp.background_spectra(plugin.edges, exposure.days, energy)
    assert set(backgrounds) <= set(exp.source_names())
    for counts in backgrounds.values():
        assert np.all(np.isfinite(counts))
        assert np.all(counts >= 0)


def test_observation_and_services(plugin: Plugin) -> None:
    """Released data, where the plug-in has none, is a ConfigError; ``services`` is None or
    service → list of override strings."""
    exp = plugin.experiment
    if exp.name != "dayabay":  # Daya Bay's released data need the official inputs file
        with pytest.raises(ConfigError):
            exp.observed_counts()
    services = exp.services
    assert services is None or all(
        isinstance(k, str) and all(isinstance(o, str) for o in v) for k, v in services.items()
    )
    assert isinstance(exp.statistics(), dict)
    assert exp.own_fit("asimov", {}, {}) is None


def test_unknown_oscillation_model_is_a_config_error_naming_key_and_models() -> None:
    with pytest.raises(ConfigError, match=re.escape("experiment.oscillation.model")) as err:
        load_experiment(load("predict", ["experiment.oscillation.model=four_flavour"]).experiment)
    for known in oscillation_models.known():
        assert known in str(err.value)
    assert "four_flavour" in str(err.value)


def test_parameters_not_of_the_model_are_a_config_error() -> None:
    """JUNO's three-flavour parameters under the 3+1 model: refused, naming both lists."""
    cfg = load("predict", ["experiment.oscillation.model=sterile_3p1_appearance"])
    with pytest.raises(ConfigError, match=re.escape("experiment.parameters")):
        load_experiment(cfg.experiment)
