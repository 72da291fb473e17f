"""The mass-ordering study: Asimov Δχ²(IO−NO) vs exposure and the toy-based test, every fit the
fit service's (``services/fit``: setup, statistic, nuisances, priors, batched toy fitter).

For each true ordering o: Asimov data (or toys) from the model of o at its PDG 2022 point
(``experiment.oscillation.ordering=o``: |Δm²32| = 2.453e-3 eV² for NO, 2.536e-3 eV² for IO),
fitted under both orderings; T = χ²_min(IO) − χ²_min(NO) per experiment. Toys are generated and
fitted ``nmo.chunk`` at a time (each chunk its own seeds), so memory does not grow with
``nmo.toys``. The statistics of the test are ``stats.mass_ordering``."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from ...errors import ConfigError
from ...stats.mass_ordering import (
    gaussian_median_sensitivity,
    gaussian_rejection_probability,
    nmo_sensitivity,
)
from ..fit import observation as obs
from ..fit.predictors import other_ordering_uri
from ..fit.run import compute as fit_compute
from ..fit.setup import FitSetup, setup
from ..fit.toys import ensemble

ORDERINGS = ("normal", "inverted")
ABBREV = {"normal": "NO", "inverted": "IO"}
Progress = Callable[[str, int, int], None]


def with_overrides(cfg: DictConfig, **values: Any) -> DictConfig:
    """A copy of ``cfg`` with dotted keys set (``experiment.oscillation.ordering=...``)."""
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    for key, value in values.items():
        OmegaConf.update(out, key.replace("__", "."), value, merge=False)
    assert isinstance(out, DictConfig)
    return out


def for_truth(cfg: DictConfig, ordering: str, **values: Any) -> DictConfig:
    """``cfg`` for true ordering ``ordering``: the experiment's ordering and the nominal and σ
    of each parameter that has one per ordering (|Δm²32|: ``by_ordering``); a ``params`` value
    at the configured ordering's nominal moves to the true ordering's (the PDG 2022 point of
    each ordering; other values are kept). ``values``: further keys (``a__b`` for ``a.b``)."""
    out = with_overrides(cfg, experiment__oscillation__ordering=ordering, **values)
    for name, spec in out.experiment.parameters.items():
        per = spec.get("by_ordering") or {}
        if ordering not in per:
            continue
        if name in out.params and np.isclose(float(out.params[name]), float(spec.nominal)):
            out.params[name] = per[ordering].nominal
        spec.nominal, spec.sigma = per[ordering].nominal, per[ordering].sigma
    return out


def check_request(cfg: DictConfig) -> None:
    """Refuse what the study cannot answer, before any fit: a surrogate that covers one
    ordering (no registered pair, no ``other_ordering_model``), an empty study."""
    per_ordering = any(
        set(ORDERINGS) <= set(spec.get("by_ordering") or {})
        for spec in cfg.experiment.parameters.values()
    )
    ordering = OmegaConf.select(cfg, "experiment.oscillation.ordering", default="")
    if str(ordering) not in ORDERINGS or not per_ordering:
        raise ConfigError(
            "experiment",
            f"{cfg.experiment.name} does not model both mass orderings (no parameter with a "
            "nominal value per ordering, `by_ordering`)",
            "run oscflow nmo on a JUNO model (experiment=juno)",
        )
    groups = {str(c.group) for c in cfg.experiment.cores}
    unknown = [str(g) for g in cfg.nmo.power_groups if str(g) not in groups]
    if unknown or not list(cfg.nmo.power_groups):
        raise ConfigError(
            "nmo.power_groups",
            f"{unknown or 'no groups'}: not a group of experiment.cores",
            f"use some of {sorted(groups)}",
        )
    n, chunk = int(cfg.nmo.toys), int(cfg.nmo.chunk)
    if n < 0 or chunk < 1:
        raise ConfigError("nmo.toys", "toys must be >= 0 and chunk >= 1", "e.g. nmo.toys=1000")
    if n == 1:
        raise ConfigError("nmo.toys", "one toy has no distribution", "use 0 or >= 2 toys")
    if not list(cfg.nmo.asimov_days) and n == 0:
        raise ConfigError("nmo", "nothing to compute", "give nmo.asimov_days or nmo.toys > 0")
    if cfg.predictor != "surrogate":
        return
    if not cfg.model_uri:
        raise ConfigError(
            "model",
            "predictor=surrogate needs a model",
            "give model_uri=models:/juno-spectrum@champion",
        )
    probe = with_overrides(cfg, orderings=False)
    fs = setup(with_overrides(probe, observation__kind="asimov"))
    other = "inverted" if fs.ordering == "normal" else "normal"
    if other_ordering_uri(cfg, other) is None:
        trained = fs.model.predictor.info().get("version")
        raise ConfigError(
            "model",
            f"{cfg.model_uri} (version {trained}) covers only the {fs.ordering} ordering: the "
            "mass-ordering test needs a surrogate of each",
            f"train its {other}-ordering partner (dvc repro spectra_inverted; oscflow train "
            f"data=<dataset>_inverted) and promote the pair: oscflow registry promote "
            f"NAME V --alias champion --pair W; or give other_ordering_model=<uri>; or "
            "predictor=exact",
        )


def exposure_gw_years(cfg: DictConfig, days: float) -> float:
    """``days`` of live time × the thermal power of ``nmo.power_groups`` (GW_th · years)."""
    groups = {str(g) for g in cfg.nmo.power_groups}
    power = sum(float(c.power_gw) for c in cfg.experiment.cores if str(c.group) in groups)
    return days / 365.25 * power


def asimov_curve(cfg: DictConfig, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Asimov Δχ²(IO−NO) at each ``nmo.asimov_days`` for both true orderings (positive: the
    data prefer the true ordering by that much)."""
    rows = []
    days_list = [float(d) for d in cfg.nmo.asimov_days]
    total = len(days_list) * len(ORDERINGS)
    for i, (days, truth) in enumerate((d, o) for d in days_list for o in ORDERINGS):
        c = for_truth(
            cfg,
            truth,
            exposure__days=days,
            observation__kind="asimov",
            gof_toys=0,
        )
        result = fit_compute(c)[0]
        dchi2 = float(result["mass_ordering"]["delta_chi2_io_minus_no"])
        rows.append(
            {
                "true_ordering": truth,
                "days": days,
                "gw_th_years": exposure_gw_years(cfg, days),
                "delta_chi2_io_minus_no": dchi2,
                "delta_chi2_wrong": dchi2 if truth == "normal" else -dchi2,
                "predictor": result["mass_ordering"]["predictor"],
            }
        )
        if progress:
            progress("asimov", i + 1, total)
    return rows


def _chunk_seed(seed: int, ordering: int, chunk: int) -> int:
    return int(np.random.SeedSequence([seed, ordering, chunk]).generate_state(1)[0])


def toy_statistics(cfg: DictConfig, truth: str, progress: Progress | None = None) -> dict[str, Any]:
    """``nmo.toys`` toys of true ordering ``truth``, each fitted under both orderings (the fit
    service's ensemble, batched by default): T values, failures, cost."""
    n, chunk = int(cfg.nmo.toys), int(cfg.nmo.chunk)
    base = for_truth(cfg, truth, observation__kind="asimov", gof_toys=0)
    fs: FitSetup = setup(base)
    expected = fs.observation.counts
    values: list[float] = []
    failed, nfcn, wall = 0, 0, 0.0
    done = 0
    t0 = time.perf_counter()
    for c, start in enumerate(range(0, n, chunk)):
        size = min(chunk, n - start)
        seed = _chunk_seed(int(cfg.nmo.seed), ORDERINGS.index(truth), c)
        ccfg = with_overrides(
            base, observation__kind="toy", observation__seed=seed, observation__n_toys=size
        )
        toys = obs.toys(expected, fs.edges, fs.truth, size, seed)
        # only the minima enter T: the Fisher curvature, no exact-Hessian calls
        part = ensemble(
            dataclasses.replace(fs, cfg=ccfg, observation=toys), toys.counts, hessian="fisher"
        )
        d = part.get("delta_chi2_io_minus_no") or {"values": []}
        values += d["values"]
        failed += size - len(d["values"])
        nfcn += int(part["nfcn_total"])
        wall += float(part["fit_wall_s_total"])
        done += size
        if progress:
            progress(f"toys true {ABBREV[truth]}", done, n)
    t = np.asarray(values)
    return {
        "true_ordering": truth,
        "truth": fs.truth,
        "n_toys": n,
        "n_failed": failed,
        "fitter": part["fitter"],
        "values": t.tolist(),
        "mean": float(np.mean(t)) if t.size else None,
        "median": float(np.median(t)) if t.size else None,
        "std": float(np.std(t, ddof=1)) if t.size > 1 else None,
        "nfcn_total": nfcn,
        "fit_wall_s_total": wall,
        "wall_s": time.perf_counter() - t0,
        "fits_per_s": 2 * n / max(time.perf_counter() - t0, 1e-9),
    }


def run(cfg: DictConfig, progress: Progress | None = None) -> dict[str, Any]:
    """The whole study as a JSON-ready result."""
    t0 = time.perf_counter()
    check_request(cfg)
    result: dict[str, Any] = {
        "experiment": str(cfg.experiment.name),
        "predictor": str(cfg.predictor),
        "model_uri": str(cfg.model_uri) if cfg.predictor == "surrogate" else None,
        "partner_uri": {
            o: other_ordering_uri(cfg, o) for o in ORDERINGS if cfg.predictor == "surrogate"
        },
        "statistic": str(cfg.statistic),
        "free": [str(p) for p in cfg.free],
        "generator": str(cfg.observation.generator),
        "nominal_days": float(cfg.exposure.days),
        "published": OmegaConf.to_container(cfg.nmo.published, resolve=True),
    }
    result["asimov"] = asimov_curve(cfg, progress) if list(cfg.nmo.asimov_days) else []
    nominal = [r for r in result["asimov"] if np.isclose(r["days"], float(cfg.exposure.days))]
    result["asimov_nominal"] = {
        ABBREV[r["true_ordering"]]: {
            "delta_chi2_wrong": r["delta_chi2_wrong"],
            "median_sigma_gaussian": gaussian_median_sensitivity(r["delta_chi2_wrong"]),
            "rejection_probability_gaussian": gaussian_rejection_probability(
                r["delta_chi2_wrong"], float(cfg.nmo.z)
            ),
        }
        for r in nominal
    }
    if int(cfg.nmo.toys) > 0:
        toys = {o: toy_statistics(cfg, o, progress) for o in ORDERINGS}
        result["toys"] = toys
        result["sensitivity"] = nmo_sensitivity(
            toys["normal"]["values"], toys["inverted"]["values"], float(cfg.nmo.z)
        )
    result["wall_s"] = time.perf_counter() - t0
    return result
