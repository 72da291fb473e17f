"""Background counts per window and per category: seed 003's tables or a model.

- ``paper``: Table 1's counts, for seed 003's two E_ν windows only, scaled linearly when the
  exposure differs from the paper's (5 yr, 1.44e33 protons, ε = 1).
- ``model``: near/far reactors from the exact predictor (E_ν windows: exact quadrature of
  flux × σ_IBD × P_ee; prompt windows: the detector response from MC pairs) or from a
  registered surrogate (prompt windows inside its 0.8–8.8 MeV range; it predicts the sum of
  all reactors, reported as ``reactors``); the other categories from the experiment's
  background model (``experiment.backgrounds``: rates and prompt-energy shapes, shown in E_ν
  at E_prompt + 0.782 MeV, as seed 003 does).

Spectra (for the spectral analysis and the threshold scan) are always model shapes on a fine
grid; with ``paper`` they are normalised per category to the paper's counts of the window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from omegaconf import DictConfig

from ...errors import ConfigError
from .inputs import Exposure, Window, number

FloatArray = NDArray[np.float64]
REACTOR_GROUPS = ("near_reactors", "far_reactors")
SURROGATE_CATEGORY = "reactors"  # a surrogate predicts the sum of all reactor cores
FINE_STEP = 0.05  # MeV, grid of the model spectra
REF_KEYS = ("seconds", "free_protons", "efficiency")


@dataclass
class Spectra:
    """Model spectra on a fine grid: ``edges`` (MeV, in ``energy``), counts per category."""

    edges: FloatArray
    energy: str
    counts: dict[str, FloatArray]
    info: dict[str, Any] = field(default_factory=dict)

    def window_counts(self, lo: float, hi: float) -> dict[str, float]:
        return {k: window_sum(self.edges, v, lo, hi) for k, v in self.counts.items()}


def window_sum(edges: FloatArray, counts: FloatArray, lo: float, hi: float) -> float:
    """Counts in [lo, hi]; a bin cut by an edge contributes pro rata (uniform in the bin)."""
    left, right = edges[:-1], edges[1:]
    overlap = np.clip(np.minimum(right, hi) - np.maximum(left, lo), 0.0, None)
    return float(np.sum(counts * overlap / (right - left)))


def fine_edges(windows: Sequence[Window], extra: Sequence[float] = ()) -> FloatArray:
    """A grid of step FINE_STEP covering all windows, with every window edge on it."""
    lo = min(w.emin for w in windows)
    hi = max(w.emax for w in windows)
    points = [lo, hi, *(e for w in windows for e in (w.emin, w.emax)), *extra]
    grid = np.arange(np.floor(lo / FINE_STEP) * FINE_STEP, hi + FINE_STEP / 2, FINE_STEP)
    grid = grid[(grid >= lo) & (grid <= hi)]
    return np.unique(np.round(np.concatenate([grid, points]), 9))


# ----------------------------------------------------------------------------- paper


def paper_reference_factor(cfg: DictConfig) -> float:
    ref = cfg.paper.get("exposure") or {}
    seconds = float(ref.get("seconds", 1.5768e8))
    protons = float(ref.get("free_protons", 1.44e33))
    eff = float(ref.get("efficiency", 1.0))
    return seconds * protons * eff


def paper_counts(
    cfg: DictConfig, windows: Sequence[Window], cats: Sequence[str], exposure: Exposure
) -> dict[str, dict[str, float]]:
    """Table 1 counts for each window (which must be one of the paper's), per category."""
    table: Mapping[str, Any] = cfg.paper.windows
    scale = exposure.factor / paper_reference_factor(cfg)
    out: dict[str, dict[str, float]] = {}
    for w in windows:
        match = [
            k
            for k, p in table.items()
            if w.energy == "neutrino"
            and abs(float(p.emin) - w.emin) < 1e-9
            and abs(float(p.emax) - w.emax) < 1e-9
        ]
        if not match:
            have = ", ".join(f"{float(p.emin):g}–{float(p.emax):g}" for p in table.values())
            raise ConfigError(
                "background.source",
                f"the paper gives counts only for its E_ν windows ({have} MeV), "
                f"not for window {w.name} = {w.label()}",
                "use those windows, or background.source=model for any window",
            )
        row = table[match[0]].counts
        counts = {}
        for c in cats:
            key = f"paper.windows.{match[0]}.counts.{c}"
            if c not in row:
                raise ConfigError(key, "missing", f"give the paper's count for {c}")
            counts[c] = number(row[c], key, nonneg=True) * scale
        out[w.name] = counts
    return out


# ----------------------------------------------------------------------------- model


def _experiment(cfg: DictConfig) -> Any:
    from ...experiments import load_experiment

    return load_experiment(cfg.experiment)


def _physics_exposure(exposure: Exposure) -> Any:
    from ...physics.rates import Exposure as PhysicsExposure

    return PhysicsExposure(
        days=exposure.days, efficiency=exposure.efficiency, free_protons=exposure.free_protons
    )


def model_spectra(
    cfg: DictConfig,
    windows: Sequence[Window],
    cats: Sequence[str],
    exposure: Exposure,
    extra_edges: Sequence[float] = (),
) -> Spectra:
    """Model counts per category on a fine grid covering all windows (one energy variable)."""
    energies = {w.energy for w in windows}
    if len(energies) != 1:
        raise ConfigError(
            "windows", "mixes neutrino and prompt energy", "use one energy variable for all"
        )
    energy = energies.pop()
    experiment = _experiment(cfg)
    params = experiment.validate_params(dict(cfg.params))
    phys = _physics_exposure(exposure)
    edges = fine_edges(windows, extra_edges)
    source = str(cfg.background.predictor)
    counts: dict[str, FloatArray] = {}
    info: dict[str, Any]
    if source == "surrogate":
        counts, info, edges = _surrogate_counts(cfg, windows, params, phys)
    else:
        from ...data.simulate import pairs_loader

        loader = pairs_loader(cfg, experiment)
        predictor, pairs_from = experiment.exact_predictor(edges, energy, "matrix", loader)
        pred = predictor.predict(params, phys)
        counts = {k: np.asarray(v[0], dtype=np.float64) for k, v in pred.items()}
        info = {
            "kind": "exact",
            "method": "matrix",
            "energy": energy,
            "mc_pairs": pairs_from,
            "oscillation": {
                "ordering": experiment.settings.ordering,
                "matter": experiment.settings.matter,
            },
            "spectrum_extrapolation": str(cfg.experiment.get("spectrum_extrapolation")),
        }
    others = experiment.background_spectra(edges, phys.days, energy)
    # The experiment's background rates are per day after selection: live time scales them.
    for name, v in others.items():
        counts[name] = np.asarray(v, dtype=np.float64)
    known = (*counts.keys(),)
    wanted = [c for c in cats if not (source == "surrogate" and c in REACTOR_GROUPS)]
    if source == "surrogate":
        wanted = [SURROGATE_CATEGORY, *wanted]
    missing = [c for c in wanted if c not in counts]
    if missing:
        raise ConfigError(
            "background.categories",
            f"the model has no categories {missing}",
            f"use some of {', '.join(known)}",
        )
    info["params"] = params
    return Spectra(edges=edges, energy=energy, counts={c: counts[c] for c in wanted}, info=info)


def _surrogate_counts(
    cfg: DictConfig, windows: Sequence[Window], params: dict[str, float], phys: Any
) -> tuple[dict[str, FloatArray], dict[str, Any], FloatArray]:
    from ...registry.reactors import SurrogateReactors
    from ...tracking.runs import tracking_uri

    surrogate = SurrogateReactors.load(
        cfg.model_uri, tracking_uri(str(cfg.logger.tracking_uri), cfg.paths.root_dir)
    )
    edges = surrogate.edges
    for i, w in enumerate(windows):
        if w.energy != surrogate.energy or w.emin < edges[0] - 1e-9 or w.emax > edges[-1] + 1e-9:
            raise ConfigError(
                f"windows.{i}",
                f"window {w.name} = {w.label()} is outside what the surrogate predicts "
                f"({surrogate.energy} energy {edges[0]:g}–{edges[-1]:g} MeV)",
                "use sensitivity/windows@windows=surrogate_prompt (seed 003's windows in prompt "
                "energy, clipped to the surrogate's range) or background.predictor=exact",
            )
    # Refused unless trained for this request (settings, parameters, ranges); its own binning
    # is used and the windows summed exactly, the exposure scaled exactly.
    surrogate.check_request(cfg.experiment, params)
    total = np.asarray(surrogate.predict(params, phys)[0], dtype=np.float64)
    info = surrogate.info()
    # A network can predict slightly negative counts where the truth is ~0: clip, and say so.
    info["negative_counts_clipped"] = float(-total[total < 0].sum())
    return {SURROGATE_CATEGORY: np.clip(total, 0.0, None)}, info, edges


def normalise_to(spectra: Spectra, window: Window, targets: Mapping[str, float]) -> Spectra:
    """Spectra restricted to ``window`` with each category scaled to ``targets`` there (paper
    counts with model shapes); a category with no model counts there keeps zero."""
    inside = (spectra.edges >= window.emin - 1e-9) & (spectra.edges <= window.emax + 1e-9)
    idx = np.nonzero(inside)[0]
    edges = spectra.edges[idx]
    counts = {}
    for c, target in targets.items():
        v = spectra.counts[c][idx[0] : idx[-1]]
        s = v.sum()
        counts[c] = v * (target / s) if s > 0 else np.zeros_like(v)
    return Spectra(edges=edges, energy=spectra.energy, counts=counts, info=spectra.info)


def known_categories(cfg: DictConfig) -> tuple[str, ...]:
    """Categories of the paper table and of the experiment model."""
    paper = {str(c) for p in cfg.paper.windows.values() for c in p.counts}
    model = set(REACTOR_GROUPS) | {str(k) for k in (cfg.experiment.get("backgrounds") or {})}
    return tuple(sorted(paper | model))
