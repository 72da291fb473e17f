"""The fit service's computation: config → predictors, observation, fits (both orderings,
referee, toys, scans) → the JSON-ready result. No MLflow recording here (``recording.py``)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
from omegaconf import DictConfig

from .minimize import FitNotConverged, FitOutcome, minimize
from .model import FitModel
from .setup import FitSetup, fit_options, ordering_models, setup

ABBREV = {"normal": "NO", "inverted": "IO"}


def fit_or_raise(model: FitModel, data: np.ndarray, cfg: DictConfig, what: str) -> FitOutcome:
    """Minimise; a fit that did not converge raises ``FitNotConverged`` with its diagnostics."""
    outcome = minimize(model, data, str(cfg.statistic), **fit_options(cfg))
    if not outcome.valid:
        diag = outcome.to_dict(str(cfg.statistic))
        raise FitNotConverged(what, {**diag, "what": what})
    return outcome


def mass_ordering(fs: FitSetup, data: np.ndarray, main: FitOutcome | None) -> dict[str, Any]:
    """Fit both orderings; Δχ²(IO−NO) = min χ²(IO) − min χ²(NO)."""
    models = ordering_models(fs)
    fits: dict[str, FitOutcome] = {}
    for ordering, model in models.items():
        if main is not None and model is fs.model:
            fits[ordering] = main
        else:
            fits[ordering] = fit_or_raise(model, data, fs.cfg, f"{ordering} ordering fit")
    return {
        "delta_chi2_io_minus_no": fits["inverted"].fval - fits["normal"].fval,
        "predictor": "+".join(sorted({m.predictor.kind for m in models.values()})),
        "fits": {
            ABBREV[o]: {
                "statistic": f.fval,
                "parameters": {n: f.value(n) for n in f.free},
                "nfcn": f.nfcn,
                "wall_s": f.wall_s,
            }
            for o, f in fits.items()
        },
    }


def referee(fs: FitSetup, data: np.ndarray, main: FitOutcome) -> dict[str, Any]:
    """The same fit with the exact predictor; shift of each parameter in σ of the exact fit."""
    exact = fit_or_raise(fs.model.with_predictor(fs.exact()), data, fs.cfg, "referee fit")
    start = {n: fs.model.parameters[fs.model.index[n]].start for n in main.free}
    steps = {n: fs.model.parameters[fs.model.index[n]].step for n in main.free}
    own = fs.experiment.own_fit(fs.observation.kind, start, steps)
    return {
        "official": own,
        "predictor": fs.exact().info(),
        "statistic": exact.fval,
        "parameters": {
            n: {
                "exact": exact.value(n),
                "exact_error": exact.error(n),
                "surrogate": main.value(n),
                "shift_sigma": (main.value(n) - exact.value(n)) / exact.error(n),
            }
            for n in main.free
        },
        "max_abs_shift_sigma": max(
            abs(main.value(n) - exact.value(n)) / exact.error(n) for n in main.free
        ),
        "nfcn": exact.nfcn,
        "wall_s": exact.wall_s,
    }


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run the configured fit (or toy ensemble) and return the JSON-ready result."""
    return compute(cfg)[0]


def compute(
    cfg: DictConfig, setup_: FitSetup | None = None
) -> tuple[dict[str, Any], FitSetup, FitOutcome | None]:
    """(JSON-ready result, the setup, the main fit outcome or None for a toy ensemble)."""
    from .batched import toy_fitter
    from .scans import scan_fitter

    t0 = time.perf_counter()
    fs = setup_ or setup(cfg)
    o = fs.observation
    ensemble_size = len(o.counts) if o.counts.ndim == 2 and len(o.counts) > 1 else 0
    toy_fitter(cfg, ensemble_size or int(cfg.gof_toys))  # refuses fitter=batched without toys
    scan_fitter(cfg.scan, str(cfg.statistic))  # refuses an unknown scan.fitter
    result: dict[str, Any] = {
        "experiment": fs.experiment.name,
        "predictor": fs.model.predictor.info(),
        "statistic": str(cfg.statistic),
        "data": {"kind": o.kind, "source": o.source, "generator": cfg.observation.get("generator")},
        "truth": fs.truth if o.kind not in ("file", "real") else None,
        "ordering": fs.ordering,
        "exposure": dataclasses.asdict(fs.exposure),
        "bin_edges": fs.edges.tolist(),
        "model_uri": cfg.model_uri if cfg.predictor == "surrogate" else None,
        "model_version": fs.model.predictor.info().get("version"),
    }
    if o.counts.ndim == 2 and len(o.counts) > 1:
        from .toys import ensemble

        result["toys"] = ensemble(fs, o.counts)
        result["wall_s"] = time.perf_counter() - t0
        return result, fs, None
    data = o.counts if o.counts.ndim == 1 else o.counts[0]
    if cfg.scan.profiles or cfg.scan.contours:
        from .scans import check_scans

        check_scans(cfg.scan, fs.model.free, str(cfg.statistic))  # before any fit runs
    main = fit_or_raise(fs.model, data, cfg, f"{fs.ordering} ordering fit")
    result["fit"] = main.to_dict(str(cfg.statistic))
    result["best_fit"] = {n: main.value(n) for n in main.free}
    result["errors"] = {n: main.error(n) for n in main.free}
    result["relative_precision"] = {
        n: main.error(n) / abs(main.value(n)) for n in main.free if main.value(n) != 0
    }
    if cfg.orderings:
        result["mass_ordering"] = mass_ordering(fs, data, main)
    if cfg.referee and fs.model.predictor.kind == "surrogate":
        result["referee"] = referee(fs, data, main)
    if int(cfg.gof_toys) > 0:
        from .toys import goodness_of_fit

        result["goodness_of_fit"] = goodness_of_fit(
            fs, main, int(cfg.gof_toys), int(cfg.observation.get("seed", 0))
        )
    if cfg.scan.profiles or cfg.scan.contours:
        from .scans import scans

        result["scans"] = scans(main, data, cfg)
    result["expected"] = fs.model.expected(main.values).tolist()
    result["counts"] = data.tolist()
    result["wall_s"] = time.perf_counter() - t0
    return result, fs, main
