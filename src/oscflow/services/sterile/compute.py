"""The sterile-neutrino search: inputs, the FC construction per analysis, limits, bands.

Everything experiment-specific comes from the experiment plug-in (detectors, exposure, backgrounds,
the oscillation model's amplitude) and conf/sterile.yaml; the statistics are
``stats/amplitude_fc.py``. The signal is linear in the oscillation model's amplitude
(sin²2θμe): a predictor gives the spectrum per unit amplitude at each Δm², the construction
multiplies (the surrogate of conf/data/jsns2_demo.yaml learns exactly that spectrum).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from omegaconf import DictConfig, OmegaConf

from ...config import bin_edges, to_container
from ...errors import ConfigError
from ...experiments import load_experiment
from ...physics import ibd, oscillation_models
from ...physics.constants import IBD_THRESHOLD
from ...physics.decay_at_rest import E_MAX, numubar_spectrum
from ...stats import amplitude_fc as fc

FloatArray = NDArray[np.float64]
Predict = Callable[[FloatArray, FloatArray], FloatArray]  # (Δm² (N,), escale (N,)) → (N, K)
MAX_GRID = 400
MAX_TOYS = 1_000_000


# ----------------------------------------------------------------------------- config checks


def _grid(node: Any, key: str, lo: float, hi: float | None) -> FloatArray:
    """A grid from {min, max, n, scale, include}; values outside [lo, hi] are a ConfigError."""
    fix = f"set {key}.min/max within [{lo:g}, {'inf' if hi is None else f'{hi:g}'}], n >= 2"
    try:
        vmin, vmax, n = float(node["min"]), float(node["max"]), int(node["n"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(key, "needs min, max and n", fix) from None
    include = [float(x) for x in (node.get("include") or [])]
    for name, v in (("min", vmin), ("max", vmax), *(("include", x) for x in include)):
        if not math.isfinite(v) or v < lo or (hi is not None and v > hi):
            raise ConfigError(
                f"{key}.{name}",
                f"{v:g} is outside [{lo:g}, {'inf' if hi is None else f'{hi:g}'}]",
                fix,
            )
    if not vmin < vmax or not 2 <= n <= MAX_GRID:
        raise ConfigError(key, f"[{vmin:g}, {vmax:g}] with n={n} is not a grid", fix)
    scale = str(node.get("scale", "linear"))
    if scale == "log":
        if vmin <= 0:
            raise ConfigError(f"{key}.min", "a log grid needs min > 0", fix)
        values = np.geomspace(vmin, vmax, n)
    elif scale == "linear":
        values = np.linspace(vmin, vmax, n)
    else:
        raise ConfigError(f"{key}.scale", f"{scale!r} unknown", "use log or linear")
    return np.unique(np.concatenate([values, include]))


@dataclass(frozen=True)
class Analysis:
    name: str
    detectors: tuple[str, ...]
    pot: float
    counting: bool
    observed: tuple[int, ...] | None
    escale: bool


def _analyses(node: Mapping[str, Any], detectors: Sequence[str]) -> list[Analysis]:
    out = []
    for name, a in node.items():
        key = f"sterile.analyses.{name}"
        dets = tuple(str(d) for d in a["detectors"])
        unknown = [d for d in dets if d not in detectors]
        if not dets or unknown:
            raise ConfigError(
                f"{key}.detectors", f"{unknown or 'none'} not configured", f"use {list(detectors)}"
            )
        pot = float(a["pot"])
        if not math.isfinite(pot) or pot <= 0:
            raise ConfigError(f"{key}.pot", f"{pot:g} must be > 0", "give protons on target")
        observed = a.get("observed")
        obs = None
        if observed is not None:
            obs = tuple(int(x) for x in observed)
            if any(x < 0 for x in obs):
                raise ConfigError(f"{key}.observed", "negative counts", "give counts >= 0")
            if not a.get("counting", False):
                raise ConfigError(
                    f"{key}.observed",
                    "observed counts are per detector (a counting analysis)",
                    "set counting: true or observed: null",
                )
            if len(obs) != len(dets):
                raise ConfigError(f"{key}.observed", "one count per detector", "fix the list")
        out.append(
            Analysis(
                str(name),
                dets,
                pot,
                bool(a.get("counting", False)),
                obs,
                bool(a.get("escale", False)),
            )
        )
    return out


# ----------------------------------------------------------------------------- inputs


@dataclass
class Channel:
    """One detector of an analysis: its nominal signal per unit amplitude comes from
    ``predict``, its backgrounds by category with relative uncertainties."""

    detector: str
    predictor: str
    predict: Predict
    backgrounds: dict[str, FloatArray]
    rel_sigma: dict[str, float]
    counting: bool

    def fold(self, x: FloatArray) -> FloatArray:
        return x.sum(axis=-1, keepdims=True) if self.counting else x


@dataclass
class Setup:
    cfg: DictConfig
    amplitudes: FloatArray
    dm2: FloatArray
    analyses: list[Analysis]
    escale_sigma: float
    surrogate: Any  # SurrogateReactors or None
    experiments: dict[str, Any]
    edges: FloatArray
    energy: str
    amplitude_name: str


def prepare(cfg: DictConfig) -> Setup:
    """Check everything before anything is computed or recorded: a ConfigError names the key."""
    experiment = load_experiment(cfg.experiment)  # negative baseline, unknown model, …
    model = oscillation_models.get(experiment.oscillation_model)
    if model.amplitude is None or "dm2_41" not in model.parameters:
        raise ConfigError(
            "experiment.oscillation.model",
            f"{model.name!r} has no amplitude parameter and Δm²41: the sterile search needs a "
            "3+1 appearance model",
            "use experiment=jsns2 (sterile_3p1_appearance)",
        )
    s = cfg.sterile
    cl = float(s.cl)
    if not 0 < cl < 1:
        raise ConfigError("sterile.cl", f"{cl:g} is outside (0, 1)", "e.g. sterile.cl=0.9")
    scale = float(s.signal_scale)
    if not 0 < scale <= 10:
        raise ConfigError("sterile.signal_scale", f"{scale:g} is outside (0, 10]", "e.g. 1.0")
    for key in ("toys", "pseudo_experiments"):
        n = int(s[key])
        if not 1 <= n <= MAX_TOYS:
            raise ConfigError(f"sterile.{key}", f"{n} is outside [1, {MAX_TOYS}]", "give a count")
    amplitudes = _grid(s.grid.sin2_2th, "sterile.grid.sin2_2th", 0.0, 1.0)
    amplitudes = np.unique(np.concatenate([[0.0], amplitudes]))
    dm2 = _grid(s.grid.dm2, "sterile.grid.dm2", 1e-6, 1e4)
    detectors = list((cfg.experiment.get("detectors") or {}).keys())
    analyses = _analyses(s.analyses, detectors)
    experiments = {}
    for det in sorted({d for a in analyses for d in a.detectors}):
        node = OmegaConf.create(to_container(cfg.experiment))
        node.detector = det
        experiments[det] = load_experiment(node)
    edges = bin_edges(cfg.binning)
    energy = "prompt"
    for e in experiments.values():
        e.check_edges(edges, energy)
    escale_sigma = float(experiment.parameters["escale"].sigma)
    surrogate = None
    if cfg.predictor == "surrogate":
        surrogate = _load_surrogate(cfg, edges, energy, dm2, escale_sigma, model.amplitude)
    elif cfg.predictor != "exact":
        raise ConfigError("predictor", f"{cfg.predictor!r} unknown", "use surrogate or exact")
    return Setup(
        cfg,
        amplitudes,
        dm2,
        analyses,
        escale_sigma,
        surrogate,
        experiments,
        edges,
        energy,
        model.amplitude,
    )


def _load_surrogate(
    cfg: DictConfig,
    edges: FloatArray,
    energy: str,
    dm2: FloatArray,
    escale_sigma: float,
    amplitude: str,
) -> Any:
    from ...registry.reactors import SurrogateReactors
    from ...tracking.runs import tracking_uri

    sur = SurrogateReactors.load(
        cfg.model_uri, tracking_uri(str(cfg.logger.tracking_uri), cfg.paths.root_dir)
    )
    # another experiment, binning or detector setting than its training data: ConfigError
    sur.check_request(cfg.experiment, None, edges, energy)
    if sur.spec.fixed.get(amplitude) != 1.0 or amplitude in sur.inputs:
        raise ConfigError(
            "model_uri",
            f"{cfg.model_uri} is not a spectrum per unit {amplitude} (trained with "
            f"{amplitude}={sur.spec.fixed.get(amplitude)})",
            f"train on a dataset with data.spectra.fixed.{amplitude}=1 (conf/data/jsns2_demo.yaml)",
        )
    ranges = sur.ranges()
    if "dm2_41" not in ranges:
        raise ConfigError("model_uri", "the surrogate does not take dm2_41", "use predictor=exact")
    lo, hi = ranges["dm2_41"]
    if dm2.min() < lo * (1 - 1e-9) or dm2.max() > hi * (1 + 1e-9):
        raise ConfigError(
            "sterile.grid.dm2",
            f"[{dm2.min():g}, {dm2.max():g}] eV² is outside the surrogate's range [{lo:g}, {hi:g}]",
            "narrow the grid or use predictor=exact",
        )
    if "escale" in ranges:
        elo, ehi = ranges["escale"]
        if elo > 1 - 3 * escale_sigma or ehi < 1 + 3 * escale_sigma:
            raise ConfigError(
                "experiment.parameters.escale.sigma",
                f"±3σ = ±{3 * escale_sigma:g} leaves the surrogate's range [{elo:g}, {ehi:g}]",
                "use a surrogate trained over ±3σ or predictor=exact",
            )
    return sur


def _predictor(setup: Setup, detector: str, exposure: Any, which: str) -> tuple[Predict, str]:
    """(Δm², escale) → signal per unit amplitude (N, K) for ``detector``."""
    exp = setup.experiments[detector]
    amp = setup.amplitude_name
    sur = setup.surrogate
    near = sur is not None and detector == str(setup.cfg.experiment.get("detector", "near"))
    if which == "surrogate" and near:
        takes_escale = "escale" in sur.inputs

        def predict_sur(d: FloatArray, e: FloatArray) -> FloatArray:
            params = {"dm2_41": d, **({"escale": e} if takes_escale else {})}
            if not takes_escale and np.any(e != 1.0):
                raise ConfigError("model_uri", "the surrogate does not take escale", "retrain")
            return np.asarray(sur.predict(params, exposure), dtype=np.float64)

        return predict_sur, "surrogate"
    predictor, _ = exp.exact_predictor(setup.edges, setup.energy, "matrix")

    def predict_exact(d: FloatArray, e: FloatArray) -> FloatArray:
        batch = {amp: np.ones_like(d), "dm2_41": d, "escale": e}
        return np.asarray(predictor.predict(batch, exposure)["signal"], dtype=np.float64)

    return predict_exact, "exact"


def channels(setup: Setup, analysis: Analysis, which: str) -> list[Channel]:
    out = []
    near_exp = setup.experiments.get("near") or next(iter(setup.experiments.values()))
    for det in analysis.detectors:
        exp = setup.experiments[det]
        days = exp.days_for(analysis.pot)
        exposure = exp.exposure(days, 1.0)
        predict, kind = _predictor(setup, det, exposure, which)
        bkg = exp.background_spectra(setup.edges, days, setup.energy)
        rel = {b.name: b.rate_uncertainty for b in exp.backgrounds}
        if not bkg:  # no published backgrounds for this detector: the configured scaling
            factors = setup.cfg.sterile.get("far_backgrounds") or {}
            base = near_exp.background_spectra(setup.edges, days, setup.energy)
            bkg = {k: float(factors.get(k, 0.0)) * v for k, v in base.items()}
            rel = {b.name: b.rate_uncertainty for b in near_exp.backgrounds}
        out.append(Channel(det, kind, predict, bkg, rel, analysis.counting))
    return out


class Model:
    """The nominal expectation of an analysis on the Δm² grid and its toys' expectations."""

    def __init__(self, setup: Setup, analysis: Analysis, which: str) -> None:
        self.setup = setup
        self.analysis = analysis
        self.channels = channels(setup, analysis, which)
        ones = np.ones_like(setup.dm2)
        self.scale = float(setup.cfg.sterile.signal_scale)
        self.templates = self.scale * np.concatenate(
            [c.fold(c.predict(setup.dm2, ones)) for c in self.channels], axis=-1
        )
        self.background = np.concatenate(
            [
                c.fold(sum(c.backgrounds.values(), np.zeros(len(setup.edges) - 1)))
                for c in self.channels
            ]
        )
        self.evaluations = len(setup.dm2)

    def toy_means(self, j: int, rng: np.random.Generator, n: int) -> tuple[FloatArray, FloatArray]:
        d = np.full(n, self.setup.dm2[j])
        if self.analysis.escale:
            e = 1.0 + self.setup.escale_sigma * rng.standard_normal(n)
        else:
            e = np.ones(n)
        sig, bkg = [], []
        for c in self.channels:
            sig.append(
                c.fold(c.predict(d, e))
                if self.analysis.escale
                else np.repeat(c.fold(c.predict(d[:1], e[:1])), n, axis=0)
            )
            total = np.zeros((n, len(self.setup.edges) - 1))
            for name, spectrum in c.backgrounds.items():
                norm = np.maximum(1.0 + c.rel_sigma.get(name, 0.0) * rng.standard_normal(n), 0.0)
                total += norm[:, None] * spectrum[None, :]
            bkg.append(c.fold(total))
        self.evaluations += n if self.analysis.escale else 1
        return self.scale * np.concatenate(sig, axis=-1), np.concatenate(bkg, axis=-1)


# ----------------------------------------------------------------------------- the study


def construct(setup: Setup, analysis: Analysis, which: str) -> tuple[Model, fc.Construction, float]:
    t0 = time.perf_counter()
    model = Model(setup, analysis, which)
    s = setup.cfg.sterile
    rng = np.random.default_rng([int(s.seed), _index(setup, analysis)])
    construction = fc.construct(
        setup.amplitudes,
        model.templates,
        model.background,
        model.toy_means,
        int(s.toys),
        float(s.cl),
        rng,
    )
    return model, construction, time.perf_counter() - t0


def _index(setup: Setup, analysis: Analysis) -> int:
    return [a.name for a in setup.analyses].index(analysis.name)


def band(
    model: Model, construction: fc.Construction, n: int, rng: np.random.Generator
) -> dict[str, list[float]]:
    """Upper limits of background-only pseudo-experiments (nuisances drawn as in the toys):
    median and the 16/84 % quantiles per Δm², and the fraction that exclude nothing."""
    bkg = model.toy_means(0, rng, n)[1]  # the backgrounds do not depend on the grid column
    counts = rng.poisson(bkg)
    t = fc.statistic_grid(counts, construction.amplitudes, model.templates, model.background)
    limits = fc.upper_limits(t, construction)  # (n, D)
    filled = np.where(np.isnan(limits), 0.0, limits)
    q = np.quantile(filled, [0.16, 0.5, 0.84], axis=0)
    return {"minus_1sigma": q[0].tolist(), "median": q[1].tolist(), "plus_1sigma": q[2].tolist()}


def at(dm2: FloatArray, values: Sequence[float] | FloatArray, target: float) -> float:
    """A limit curve at Δm² = target (interpolated in log Δm²)."""
    return float(np.interp(np.log(target), np.log(dm2), np.asarray(values, dtype=np.float64)))


def lsnd_band(cfg: DictConfig, dm2: FloatArray) -> dict[str, Any]:
    """sin²2θ where LSND's averaged ⟨P⟩ equals P ± zσ (see conf/sterile.yaml)."""
    node = cfg.sterile.lsnd
    lo_e, hi_e = (float(x) for x in node.energy_mev)
    lo_l, hi_l = (float(x) for x in node.baseline_m)
    e = np.linspace(max(lo_e, IBD_THRESHOLD), min(hi_e, E_MAX), 400)
    w = numubar_spectrum(e) * ibd.cross_section(e)
    w = w / w.sum()
    length = np.linspace(lo_l, hi_l, 41)
    phase = 1.26693 * dm2[:, None, None] * length[None, :, None] / e[None, None, :]
    mean_sin2 = (np.sin(phase) ** 2 * w[None, None, :]).sum(-1).mean(-1)
    p = float(node.probability)
    sigma = math.hypot(*(float(x) for x in node.sigma))
    z = float(node.z)
    low = np.clip((p - z * sigma) / mean_sin2, 0.0, None)
    high = (p + z * sigma) / mean_sin2
    return {
        "dm2": dm2.tolist(),
        "sin2_2th_low": low.tolist(),
        "sin2_2th_high": np.where(high <= 1.0, high, np.nan).tolist(),
        "probability": p,
        "sigma": sigma,
        "z": z,
        "best_fit": dict(to_container(node.best_fit)),
        "source": str(node.source),
    }


def coverage(setup: Setup, model: Model, construction: fc.Construction) -> list[dict[str, float]]:
    s = setup.cfg.sterile
    rng = np.random.default_rng([int(s.seed), 99])
    out = []
    for point in s.coverage.points:
        a_req, d_req = float(point[0]), float(point[1])
        i = int(
            np.argmin(
                np.abs(np.log(np.maximum(setup.amplitudes, 1e-12)) - np.log(max(a_req, 1e-12)))
            )
        )
        j = int(np.argmin(np.abs(np.log(setup.dm2) - np.log(d_req))))
        res = fc.coverage(
            float(setup.amplitudes[i]),
            j,
            float(construction.critical[i, j]),
            model.templates,
            model.background,
            model.toy_means,
            int(s.coverage.toys),
            rng,
        )
        ok = res["fraction"] >= construction.cl - 2 * res["error"]
        out.append(
            {
                "sin2_2th": float(setup.amplitudes[i]),
                "dm2": float(setup.dm2[j]),
                **res,
                "cl": construction.cl,
                "covers": bool(ok),
            }
        )
    return out


def run(cfg: DictConfig, setup: Setup | None = None) -> dict[str, Any]:
    """The whole study (the checks of ``prepare`` first, unless given its result)."""
    setup = setup or prepare(cfg)
    s = cfg.sterile
    t_start = time.perf_counter()
    dm2 = setup.dm2
    result: dict[str, Any] = {
        "experiment": cfg.experiment.name,
        "predictor": cfg.predictor,
        "model_uri": cfg.model_uri if cfg.predictor == "surrogate" else None,
        "cl": float(s.cl),
        "grid": {"sin2_2th": setup.amplitudes.tolist(), "dm2": dm2.tolist()},
        "signal_scale": float(s.signal_scale),
        "toys": int(s.toys),
        "pseudo_experiments": int(s.pseudo_experiments),
        "nuisances": "marginalised in the toys (background normalisations; energy scale where "
        "an analysis says escale), the statistic at their nominal values",
        "analyses": {},
    }
    for analysis in setup.analyses:
        which = str(cfg.predictor)
        model, construction, seconds = construct(setup, analysis, which)
        entry: dict[str, Any] = {
            "detectors": list(analysis.detectors),
            "pot": analysis.pot,
            "days": [setup.experiments[d].days_for(analysis.pot) for d in analysis.detectors],
            "counting": analysis.counting,
            "escale_marginalised": analysis.escale,
            "predictor_by_detector": {c.detector: c.predictor for c in model.channels},
            "background_total": float(model.background.sum()),
            "signal_per_unit_amplitude_at": {
                f"{d:g}": float(v) for d, v in zip(dm2, model.templates.sum(-1), strict=True)
            },
            "construction_s": seconds,
            "model_evaluations": model.evaluations,
            "critical": construction.critical.tolist(),
        }
        rng = np.random.default_rng([int(s.seed), 1000 + _index(setup, analysis)])
        entry["expected"] = band(model, construction, int(s.pseudo_experiments), rng)
        if analysis.observed is not None:
            n = np.asarray(analysis.observed, dtype=np.float64)[None, :]
            t_obs = fc.statistic_grid(n, setup.amplitudes, model.templates, model.background)
            limits = fc.upper_limits(t_obs, construction)[0]
            entry["observed"] = {
                "counts": list(analysis.observed),
                "upper_limit": [None if np.isnan(x) else float(x) for x in limits],
            }
            good = np.where(np.isnan(limits), 0.0, limits)
            high = dm2 >= 10.0
            entry["observed"]["upper_limit_averaging"] = (
                float(np.max(good[high])) if high.any() else None
            )
            entry["observed"]["upper_limit_at_1p2"] = at(dm2, good, 1.2)
            entry["coverage"] = coverage(setup, model, construction)
            if cfg.compare_exact and which == "surrogate":
                m_ex, c_ex, sec_ex = construct(setup, analysis, "exact")
                t_ex = fc.statistic_grid(n, setup.amplitudes, m_ex.templates, m_ex.background)
                lim_ex = np.where(np.isnan(l := fc.upper_limits(t_ex, c_ex)[0]), 0.0, l)
                entry["timing"] = {
                    "construction_surrogate_s": seconds,
                    "construction_exact_s": sec_ex,
                    "speedup": sec_ex / seconds if seconds > 0 else None,
                    "model_evaluations": m_ex.evaluations,
                    "upper_limit_exact": lim_ex.tolist(),
                    "max_rel_diff_upper_limit": float(
                        np.max(np.abs(lim_ex - good) / np.maximum(lim_ex, 1e-12))
                    ),
                    "max_rel_diff_templates": float(
                        np.max(
                            np.abs(m_ex.templates - model.templates)
                            / np.maximum(m_ex.templates, 1e-12)
                        )
                    ),
                }
        entry["expected_median_averaging"] = (
            float(np.max(np.asarray(entry["expected"]["median"])[dm2 >= 10.0]))
            if (dm2 >= 10).any()
            else None
        )
        entry["expected_median_at_1p2"] = at(dm2, entry["expected"]["median"], 1.2)
        lsnd = s.lsnd.best_fit
        entry["excludes_lsnd_best_fit_median"] = bool(
            at(dm2, entry["expected"]["median"], float(lsnd.dm2)) < float(lsnd.sin2_2th)
        )
        result["analyses"][analysis.name] = entry
    result["lsnd"] = lsnd_band(cfg, np.geomspace(dm2.min(), dm2.max(), 200))
    result["wall_s"] = time.perf_counter() - t_start
    return result
