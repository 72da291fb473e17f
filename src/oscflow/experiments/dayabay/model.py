"""The Daya Bay plug-in: parameters, the official model as exact predictor, the release's data
and the official covariance-matrix CNP χ² (``stats.covariance``).

Spectra are the concatenated detector × period histograms of the official χ² (21 blocks × 26
reconstructed-energy bins = 546 bins); oscflow's "bin edges" for them are the bin indices
0…546 (energy variable ``concatenated``), the energy edges of each block are in
``erec_edges()``. The exposure is the release's own (3158 days); counts are not rescaled.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ...errors import ConfigError
from ...physics.rates import Exposure
from ...stats import covariance, woodbury
from ..base import (
    Experiment,
    check_exposure,
    finite,
    parameter_specs,
)
from . import nuisances
from .official import OfficialModel
from .store import REMAKE, OfficialInputs, from_official

log = logging.getLogger(__name__)

ENERGY = "concatenated"
# official: the spectrum; official_nuisances: the spectrum and its derivative in each of
# experiment.nuisances, concatenated ((1 + n) × 546 numbers: a nuisance surrogate's dataset)
METHODS = ("official", "official_nuisances")
GROUP = "total"  # IBD + backgrounds, as the official χ² compares them with the data


@dataclasses.dataclass(frozen=True)
class Settings:
    """The official model's settings: normal ordering, vacuum (as in PRL 130, 161802)."""

    ordering: str = "normal"
    matter: bool = False


class OfficialPredictor:
    """Exact spectra from the collaboration's model, one parameter point at a time (~25 ms)."""

    groups = (GROUP,)
    detector_parameters: tuple[str, ...] = ()

    def __init__(self, experiment: DayaBayExperiment, edges: ArrayLike, energy: str) -> None:
        self.experiment = experiment
        self.parameters = tuple(experiment.official_paths)
        # the published fit's free nuisances (experiment.nuisances): inputs of the fits' exact
        # predictor besides the oscillation parameters (services/fit/predictors.ExactPredictor)
        self.nuisance_inputs = tuple(experiment.nuisances)
        self.edges = np.asarray(edges, dtype=np.float64)
        self.energy = energy
        self._official: OfficialModel | None = None

    @property
    def official(self) -> OfficialModel:
        """The collaboration's model, built on first use (worker processes build their own)."""
        if self._official is None:
            self._official = self.experiment.official()
            self._check_bins(self._official.nbins)
        return self._official

    def _check_bins(self, nbins: int) -> None:
        if len(self.edges) - 1 != nbins:
            raise ConfigError(
                "binning",
                f"Daya Bay's concatenated spectrum has {nbins} bins, not {len(self.edges) - 1}",
                f"use binning.emin=0 binning.emax={nbins} binning.nbins={nbins}",
            )

    def predict(
        self,
        params: Mapping[str, ArrayLike],
        exposure: Exposure | None = None,  # noqa: ARG002 - the Experiment interface
    ) -> dict[str, NDArray[np.float64]]:
        names = [k for k in params if k in self.experiment.official_paths]
        self._check_inputs(names)
        cols = np.broadcast_arrays(*(np.atleast_1d(np.asarray(params[k], float)) for k in names))
        size = cols[0].size if cols else 1
        out = np.empty((size, len(self.edges) - 1))
        for i in range(size):
            out[i] = self._evaluate({k: float(c[i]) for k, c in zip(names, cols, strict=True)})
        return {GROUP: out}

    def _check_inputs(self, names: list[str]) -> None:
        """Every parameter of the official model is an input of its spectrum."""

    def _evaluate(self, point: Mapping[str, float]) -> NDArray[np.float64]:
        return self.official.spectrum(point)


class NuisanceColumnsPredictor(OfficialPredictor):
    """[N0, ∂N/∂η_1, …, ∂N/∂η_n] at each oscillation point (``nuisances.columns``: the official
    spectrum and its forward-difference derivatives in ``experiment.nuisances``, ~21
    evaluations per point), concatenated into (1 + n) × 546 numbers: the outputs a nuisance
    surrogate learns, which the fit combines analytically (``nuisances.Combination``)."""

    def _check_bins(self, nbins: int) -> None:
        nuisances.check_layout(
            len(self.edges) - 1,
            nbins,
            tuple(self.experiment.nuisances.values()),
            "binning (method official_nuisances)",
        )

    def _check_inputs(self, names: list[str]) -> None:
        bad = [k for k in names if k in self.experiment.nuisances]
        if bad:
            raise ConfigError(
                "data.spectra.inputs",
                f"{bad} are the nuisances this method differentiates in, not inputs",
                "sample the oscillation parameters only",
            )

    def _evaluate(self, point: Mapping[str, float]) -> NDArray[np.float64]:
        order = tuple(self.experiment.nuisances.values())
        return nuisances.columns(self.official, point, order).ravel()


class DayaBayExperiment(Experiment):
    """The Daya Bay full data release as an oscflow experiment."""

    name = "dayabay"
    settings: Settings
    energy_variables = (ENERGY,)
    methods = METHODS

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        self.cfg = cfg
        self.nuisances = nuisances.parse(cfg.get("nuisances"))
        clash = sorted(set(self.nuisances) & set(cfg["parameters"]))
        if clash:
            raise ConfigError(
                "experiment.nuisances",
                f"{clash} are also in experiment.parameters",
                "name each parameter once: surrogate inputs in parameters, free nuisances in "
                "nuisances",
            )
        nuisance_specs = {
            k: {
                "source": f"dayabay-model parameters.free.{self.nuisances[k].official}",
                **dict(v),
                "kind": "nuisance",
                "n_sigma": 0,
            }
            for k, v in (cfg.get("nuisances") or {}).items()
        }
        # the nuisances are parameters of fits (free in fit/experiment=dayabay_published,
        # fixed at nominal otherwise), never sampled dataset inputs (data.spectra.inputs)
        self.parameters = parameter_specs({**cfg["parameters"], **nuisance_specs})
        self.official_paths = {k: str(p["official"]) for k, p in cfg["parameters"].items()}
        self.official_paths.update({k: n.official for k, n in self.nuisances.items()})
        self.options = dict(cfg.get("official_options") or {})
        self.days = finite(
            cfg["exposure_days"], "experiment.exposure_days", "give the release's live days"
        )
        ordering = str(cfg.get("oscillation", {}).get("ordering", "normal"))
        if ordering != "normal":
            raise ConfigError(
                "experiment.oscillation.ordering",
                f"{ordering!r}: the official model is set up for Δm²32 > 0",
                "use ordering=normal (inverted: give dm2_32 negative values in the model)",
            )
        self.settings = Settings(ordering=ordering)
        self._official: OfficialModel | None = None
        path = cfg.get("official_inputs")
        self.inputs_path = Path(str(path)) if path else None
        self._inputs: OfficialInputs | None = None

    def official(self) -> OfficialModel:
        """The collaboration's model (built on first use, cached per process)."""
        if self._official is None:
            self._official = OfficialModel(self.official_paths, self.options)
        return self._official

    def inputs(self) -> OfficialInputs:
        """What fits need from the official model (covariance, data, constraints): read from
        ``experiment.official_inputs`` when that file exists (milliseconds; the DVC stage
        ``dayabay_official`` writes it), otherwise computed from the official model, built
        here for them (~1 min)."""
        if self._inputs is None:
            path = self.inputs_path
            if path is not None and path.is_file():
                inputs = OfficialInputs.load(path)
                inputs.check_provenance(self.options, str(path))
            else:
                if path is not None:
                    log.warning(
                        "no official-model inputs at %s: building the official model for "
                        "them (~1 min); %s",
                        path,
                        REMAKE.replace("remake it", "store them once"),
                    )
                inputs = from_official(self.official(), self.options)
            self._inputs = inputs
        return self._inputs

    def with_ordering(self, ordering: str) -> DayaBayExperiment:
        if ordering != self.settings.ordering:
            raise ConfigError(
                "orderings",
                "the Daya Bay plug-in fits the normal ordering only",
                "set orderings=false",
            )
        return self

    def source_names(self) -> tuple[str, ...]:
        return (GROUP,)

    def exposure(self, days: float, efficiency: float) -> Exposure:
        """The release's exposure: counts are the recorded data set's, not rescalable."""
        check_exposure(days, efficiency)  # finite numbers first: NaN compares unequal to all
        if abs(days - self.days) > 1e-9 or efficiency != 1.0:
            raise ConfigError(
                "exposure",
                f"Daya Bay's exposure is fixed by the data release ({self.days:g} days, "
                f"efficiencies inside the model), not days={days:g} efficiency={efficiency:g}",
                f"leave exposure.days={self.days:g} exposure.efficiency=1",
            )
        return Exposure(days=days, efficiency=1.0)

    def predictor(
        self,
        edges: ArrayLike,
        energy: str = ENERGY,
        method: str = "official",
        pairs: Any = None,  # noqa: ARG002 - the Experiment interface
    ) -> OfficialPredictor:
        if energy != ENERGY:
            raise ConfigError("energy", f"{energy!r} unknown for Daya Bay", f"use {ENERGY}")
        if method not in METHODS:
            raise ConfigError("method", f"{method!r} unknown for Daya Bay", f"use {METHODS}")
        if method == "official_nuisances":
            return NuisanceColumnsPredictor(self, edges, energy)
        return OfficialPredictor(self, edges, energy)

    def background_spectra(
        self,
        edges: NDArray[np.float64],  # noqa: ARG002 - the Experiment interface
        days: float,  # noqa: ARG002
        energy: str,  # noqa: ARG002
    ) -> dict[str, NDArray[np.float64]]:
        """None separate: backgrounds are part of the official expectation (group ``total``)."""
        return {}

    def observed_counts(self) -> tuple[NDArray[np.float64], str]:
        """The release's IBD candidates per concatenated bin, and where they came from."""
        inputs = self.inputs()
        return inputs.data.copy(), inputs.source()

    def statistics(self) -> dict[str, covariance.TermsFn]:
        """``cnp_covmat``: the official covariance-matrix CNP χ² (``statistic.full.covmat.chi2cnp``:
        CNP variance of the current prediction plus the systematic covariance of the nominal
        point), reproduced in numpy so that any predictor can be fitted with it; evaluated by
        ``stats.woodbury`` (V_syst's low rank: no 546×546 Cholesky per evaluation, within
        1e-9 relative of the plain Cholesky, a stated bound). The covariance comes from
        :meth:`inputs` on first use.

        ``cnp_covmat_nominal``: the same with the CNP variance held at the nominal prediction
        — what the collaboration's stored fit of the release minimised (its node kept the
        variance of its first evaluation, at the nominal point; README, Daya Bay)."""
        inputs = self.inputs

        def syst() -> NDArray[np.float64]:
            return inputs().syst_covariance

        def nominal() -> NDArray[np.float64]:
            return inputs().nominal

        return {
            "cnp_covmat": woodbury.LowRankCNPCovariance(syst),
            "cnp_covmat_nominal": woodbury.LowRankCNPCovariance(syst, frozen=nominal),
        }

    def own_fit(
        self, kind: str, start: Mapping[str, float], steps: Mapping[str, float]
    ) -> dict[str, Any] | None:
        """The official model's own iminuit fit of its statistic node (real data only). With
        free nuisances (the published configuration) it is staged, as ``experiment.official_fit``
        says: the oscillation parameters first (nuisances at their start values), then all,
        with MIGRAD's ``strategy``, ``tolerance`` and call budget ``ncall`` per stage."""
        if kind != "real":
            return None
        opts = dict(self.cfg.get("official_fit") or {})
        if not any(n in self.nuisances for n in start):
            return self.official().fit(start, steps)
        first = [n for n in start if self.parameters[n].kind == "oscillation"]
        return self.official().fit(
            start,
            steps,
            tolerance=float(opts.get("tolerance", 0.1)),
            first=first,
            strategy=int(opts.get("strategy", 1)),
            ncall=None if opts.get("ncall") is None else int(opts["ncall"]),
        )

    def nuisance_combination(self, n_out: int, nbins: int) -> nuisances.Combination | None:
        """None for a surrogate of the spectrum (``n_out`` = ``nbins``); for one of the
        spectrum and its derivatives in ``experiment.nuisances`` (dataset method
        ``official_nuisances``: (1 + n) × ``nbins`` outputs) their ``Combination``; any other
        count is refused naming the layout it should have."""
        if n_out == nbins:
            return None
        order = tuple(self.nuisances.values())
        nuisances.check_layout(n_out, nbins, order, "the surrogate")
        return nuisances.Combination(order)


def build(cfg: Mapping[str, Any]) -> DayaBayExperiment:
    return DayaBayExperiment(cfg)
