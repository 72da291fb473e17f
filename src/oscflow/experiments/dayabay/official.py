"""Access to the Daya Bay collaboration's model (``dayabay-model`` on ``dag-modelling``).

Building the model reads the data release and allocates the graph (~20–30 s here), so one
instance is kept per process. Nothing else in oscflow imports ``dayabay_model``.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ...errors import ConfigError

INSTALL_HINT = "pip install 'oscflow[dayabay]'  (or: make install-dayabay)"
SPECTRUM = "outputs.eventscount.final.concatenated.selected"
REAL_DATA = "outputs.data.real.concatenated.selected"
SYST_COVARIANCE = "outputs.covariance.covmat_syst.sum"
FREE = "parameters.free"
CONSTRAINED = "parameter_group.constrained"

_MODELS: dict[tuple[Any, ...], Any] = {}


def import_model_class() -> Any:
    """``dayabay_model.model_dayabay``, or a ConfigError saying how to install the extra."""
    try:
        from dayabay_model import model_dayabay
    except ImportError as exc:
        raise ConfigError(
            "experiment",
            f"the Daya Bay experiment needs the collaboration's model, which is not installed "
            f"({exc.name or exc})",
            f"install the extra: {INSTALL_HINT}",
        ) from None
    return model_dayabay


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The official model logs at INFO and prints every parameter push; keep our output ours."""
    logger = logging.getLogger("dag_modelling")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def official_model(options: Mapping[str, Any] | None = None) -> Any:
    """The collaboration's model built with ``options`` (constructor keywords), cached."""
    options = dict(options or {})
    key = tuple(sorted((k, repr(v)) for k, v in options.items()))
    if key not in _MODELS:
        cls = import_model_class()
        with _quiet():
            _MODELS[key] = cls(**options)
    return _MODELS[key]


class OfficialModel:
    """The official model's spectrum, data, covariance and χ² as numpy, with our parameter
    names mapped to its storage keys (``parameters.free.<path>``)."""

    def __init__(self, paths: Mapping[str, str], options: Mapping[str, Any] | None = None):
        self.model = official_model(options)
        storage = self.model.storage
        self.paths = dict(paths)
        free = set(storage(FREE).walkjoinedkeys())
        missing = [p for p in self.paths.values() if p not in free]
        if missing:
            raise ConfigError(
                "experiment.parameters",
                f"the official model has no free parameters {missing}",
                f"use paths from parameters.free: {sorted(free)}",
            )
        self._all = {k: storage[f"{FREE}.{k}"] for k in sorted(free)}
        self.nominal_free = {k: float(p.value) for k, p in self._all.items()}
        self._spectrum = storage[SPECTRUM]
        self._covariance_ready = False
        self._constrained: dict[str, tuple[Any, float]] | None = None
        self._touched: set[str] = set()

    def reset(self) -> None:
        """Every free parameter, and every constrained one ``set_constrained`` changed, back
        to the model's nominal value."""
        for k, p in self._all.items():
            if p.value != self.nominal_free[k]:
                p.value = self.nominal_free[k]
        if self._touched:
            known = self._constrained_parameters()
            for name in self._touched:
                p, nominal = known[name]
                if p.value != nominal:
                    p.value = nominal
            self._touched.clear()

    def set(self, values: Mapping[str, float]) -> None:
        for name, value in values.items():
            self._all[self.paths[name]].value = float(value)

    def spectrum(self, values: Mapping[str, float]) -> NDArray[np.float64]:
        """Expected counts (K,) of the concatenated spectrum at ``values`` (others nominal)."""
        self.reset()
        self.set(values)
        return np.array(self._spectrum.data, dtype=np.float64)

    def constraints(self) -> tuple[list[str], list[float], list[NDArray[np.float64]]]:
        """The Gaussian constraints of the model (every group under
        ``parameter_group.constrained``): parameter paths and central values in group order,
        and per group its σ (n,) or the lower Cholesky factor (n, n) of its covariance — what
        ``statistic.nuisance.all`` normalises the parameters with (``stats.pull``)."""
        names: list[str] = []
        central: list[float] = []
        factors: list[NDArray[np.float64]] = []
        for key, group in self.model.storage(CONSTRAINED).walkitems():
            c = group.constraint
            subnames = [".".join((*key, *sub)) for sub, _ in group.iteritems()]
            names += subnames
            central += [float(x) for x in np.ravel(c.central.data)]
            factors.append(
                np.array(c.sigma.data, dtype=np.float64).reshape(
                    (len(subnames),) if np.ndim(c.sigma.data) == 1 else (len(subnames),) * 2
                )
            )
        return names, central, factors

    def _constrained_parameters(self) -> dict[str, tuple[Any, float]]:
        if self._constrained is None:
            self._constrained = {
                ".".join((*key, *sub)): (p, float(p.value))
                for key, group in self.model.storage(CONSTRAINED).walkitems()
                for sub, p in group.iteritems()
            }
        return self._constrained

    def set_constrained(self, values: Mapping[str, float]) -> None:
        """Set constrained parameters by their ``constraints()`` names (``reset`` restores)."""
        known = self._constrained_parameters()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(
                "parameters",
                f"the official model has no constrained parameters {unknown[:5]}",
                "use names from OfficialModel.constraints()",
            )
        for name, value in values.items():
            known[name][0].value = float(value)
            self._touched.add(name)

    def set_free(self, values: Mapping[str, float]) -> None:
        """Set free parameters by their paths under ``parameters.free`` (``reset`` restores)."""
        unknown = sorted(set(values) - set(self._all))
        if unknown:
            raise ConfigError(
                "parameters",
                f"the official model has no free parameters {unknown}",
                f"use paths from parameters.free: {sorted(self._all)}",
            )
        for path, value in values.items():
            self._all[path].value = float(value)

    def statistic(
        self,
        key: str,
        values: Mapping[str, float],
        free: Mapping[str, float] | None = None,
        constrained: Mapping[str, float] | None = None,
    ) -> float:
        """The official model's own statistic node ``outputs.statistic.<key>`` at ``values``
        (ours), ``free`` (paths under ``parameters.free``) and ``constrained`` (names of
        :meth:`constraints`), every other parameter nominal.

        The systematic covariance is computed first (:meth:`systematic_covariance`): if its
        Jacobian were computed inside the first evaluation of a statistic node, its parameter
        steps would taint ``statistic.staterr.cnp_variance`` while ``covariance.covmat_full_cnp``
        is mid-evaluation, leaving a tainted parent under an untainted child, so that lazy
        propagation stops there for good and the node keeps the CNP variance of its first
        point (dag-modelling 0.14.4 / dayabay-model 1.7.1). Computed first, the node is the χ²
        its graph defines: CNP variance of the current prediction (tests/test_dayabay.py).
        Statistics without the covariance (``stat.*``, ``full.pull.*``) do not need it first.
        """
        if "covmat" in key:
            self._compute_covariance()
        self.reset()
        self.set(values)
        self.set_free(free or {})
        self.set_constrained(constrained or {})
        return float(self.model.storage[f"outputs.statistic.{key}"].data[0])

    def use_data(self, kind: str) -> None:
        """Point the official statistics at the real data or at the Asimov of the current
        parameters (``switch_data``)."""
        self.model.switch_data(kind)

    @property
    def nbins(self) -> int:
        return int(self._spectrum.data.shape[0])

    def real_data(self) -> NDArray[np.float64]:
        return np.array(self.model.storage[REAL_DATA].data, dtype=np.float64)

    def systematic_covariance(self) -> NDArray[np.float64]:
        """Covariance (K, K) of all systematic groups, as the official model computed it at its
        nominal point (the ``covmat`` statistics use it frozen: it is computed, from the
        Jacobian of every constrained parameter, on first access, so at the nominal point)."""
        self._compute_covariance()
        return np.array(self.model.storage[SYST_COVARIANCE].data, dtype=np.float64)

    def _compute_covariance(self) -> None:
        if not self._covariance_ready:
            self.reset()
            self.model.storage[SYST_COVARIANCE].touch()
            self._covariance_ready = True

    def segments(self) -> list[str]:
        """``detector.period`` of each concatenated block, in order."""
        keys = self.model.storage("outputs.eventscount.final.ibd").walkjoinedkeys()
        return list(keys)

    def erec_edges(self) -> NDArray[np.float64]:
        """Reconstructed-energy bin edges (MeV) of each block (the final binning)."""
        return np.asarray(self.model.storage["outputs.edges.energy_final"].data, dtype=np.float64)

    def fit(
        self,
        start: Mapping[str, float],
        steps: Mapping[str, float],
        statistic: str = "full.covmat.chi2cnp",
        tolerance: float = 0.01,
        *,
        first: Sequence[str] = (),
        strategy: int = 1,
        ncall: int | None = None,
        limits: Mapping[str, tuple[float, float]] | None = None,
    ) -> dict[str, Any]:
        """The official model's own fit: MIGRAD + HESSE of its statistic node over ``start``'s
        parameters (ours, mapped to its storage), the others at nominal.

        ``first``: a staged start — MIGRAD over these alone (the others fixed at ``start``),
        then over all from there (the published configuration's 22 parameters: the two
        oscillation parameters first brings MIGRAD near the minimum before it builds the
        22×22 metric); ``strategy`` and ``ncall`` are MIGRAD's (None: its default budget per
        stage); ``limits`` per parameter, none by default. ``stages`` reports each stage's
        calls, wall time and validity; ``nfcn`` and ``wall_s`` are the totals."""
        import time

        from iminuit import Minuit

        names = list(start)
        unknown = [n for n in first if n not in names]
        if unknown:
            raise ConfigError("fit.first", f"{unknown} are not fitted here", f"choose from {names}")
        t0 = time.perf_counter()

        def cost(x: Any) -> float:
            return self.statistic(statistic, dict(zip(names, x, strict=True)))

        m = Minuit(cost, [float(start[n]) for n in names], name=names)
        m.errordef = Minuit.LEAST_SQUARES
        m.errors = [float(steps[n]) for n in names]
        m.tol = tolerance
        m.strategy = strategy
        for n, lim in (limits or {}).items():
            m.limits[n] = lim
        stages = []
        plan = [list(first), names] if first else [names]
        for free in plan:
            t1, n1 = time.perf_counter(), m.nfcn
            m.fixed = [n not in free for n in names]
            m.migrad(ncall=ncall)
            stages.append(
                {
                    "free": len(free),
                    "nfcn": int(m.nfcn - n1),
                    "wall_s": time.perf_counter() - t1,
                    "valid": bool(m.valid),
                    "fval": float(m.fval),
                }
            )
        m.hesse()
        self.reset()
        return {
            "statistic_node": f"outputs.statistic.{statistic}",
            "valid": bool(m.valid),
            "fval": float(m.fval),
            "edm": float(m.fmin.edm),
            "values": {n: float(m.values[n]) for n in names},
            "errors": {n: float(m.errors[n]) for n in names},
            "nfcn": int(m.nfcn),
            "strategy": int(strategy),
            "stages": stages,
            "wall_s": time.perf_counter() - t0,
        }
