"""``oscflow predict``: the expected spectrum for given parameters and exposure, as JSON."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from omegaconf import DictConfig

from .config import bin_edges
from .data.simulate import pairs_loader
from .errors import ConfigError
from .experiments import load_experiment

PREDICTORS = ("exact", "surrogate")


def _surrogate_reactors(
    cfg: DictConfig, params: dict[str, float], exposure: Any, edges: Any, energy: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Reactor spectrum from a registered surrogate, scaled from its reference exposure; a
    request it was not trained for (settings, parameters, binning) is refused."""
    from .registry.reactors import SurrogateReactors
    from .tracking.runs import tracking_uri

    surrogate = SurrogateReactors.load(
        cfg.model_uri, tracking_uri(str(cfg.logger.tracking_uri), cfg.paths.root_dir)
    )
    surrogate.check_request(cfg.experiment, params, edges, energy)
    counts = surrogate.predict(params, exposure)[0]
    return {"reactors": counts}, {
        "kind": "surrogate",
        "model": str(cfg.model_uri),
        "inputs": list(surrogate.inputs),
    }


def run(cfg: DictConfig) -> dict[str, Any]:
    """Compute the spectrum described by ``cfg``; returns the JSON-ready result."""
    if cfg.predictor not in PREDICTORS:
        raise ConfigError("predictor", f"{cfg.predictor!r} is unknown", f"use one of {PREDICTORS}")
    experiment = load_experiment(cfg.experiment)
    params = experiment.validate_params(dict(cfg.params))
    exposure = experiment.exposure(float(cfg.exposure.days), float(cfg.exposure.efficiency))
    edges = bin_edges(cfg.binning)
    energy = str(cfg.energy)
    pairs: Any = None
    if cfg.predictor == "surrogate":
        by_source, predictor_info = _surrogate_reactors(cfg, params, exposure, edges, energy)
        if cfg.backgrounds:
            by_source.update(experiment.background_spectra(edges, exposure.days, energy))
    else:
        pairs = pairs_loader(cfg, experiment)
        predictor, pairs_from = experiment.exact_predictor(edges, energy, str(cfg.method), pairs)
        prediction = experiment.predict(
            params, exposure, predictor, backgrounds=bool(cfg.backgrounds)
        )
        by_source = {k: v[0] for k, v in prediction.by_source.items()}
        predictor_info = {"kind": "exact", "method": str(cfg.method), "mc_pairs": pairs_from}
    counts = np.sum(list(by_source.values()), axis=0)
    plot = (
        _plot(cfg, experiment, params, exposure, edges, energy, pairs, by_source)
        if cfg.predictor == "exact"
        else None
    )
    return {
        "experiment": experiment.name,
        "energy": energy,
        "energy_unit": "MeV",
        "bin_edges": edges.tolist(),
        "counts": counts.tolist(),
        "total": float(counts.sum()),
        "by_source": {k: np.asarray(v).tolist() for k, v in by_source.items()},
        "totals_by_source": {k: float(np.sum(v)) for k, v in by_source.items()},
        "params": params,
        "ordering": experiment.settings.ordering,
        "matter": experiment.settings.matter,
        "exposure": dataclasses.asdict(exposure),
        "plot": plot,
        "predictor": predictor_info,
    }


def _plot(
    cfg: DictConfig,
    experiment: Any,
    params: dict[str, float],
    exposure: Any,
    edges: Any,
    energy: str,
    pairs: Any,
    by_source: dict[str, Any],
) -> str | None:
    """PNG of the spectrum by source with the other mass ordering as the residual reference
    (none for an experiment with one ordering, ``Experiment.orderings``)."""
    if not cfg.plot:
        return None
    from .plots.spectrum import plot_spectrum

    ordering = experiment.settings.ordering
    other = "inverted" if ordering == "normal" else "normal"
    reference = None
    if other in experiment.orderings:  # an experiment insensitive to the ordering has none
        alt = experiment.with_ordering(other)
        alt_predictor, _ = alt.exact_predictor(edges, energy, str(cfg.method), pairs)
        reference = alt.predict(params, exposure, alt_predictor).counts[0]
    path = plot_spectrum(
        cfg.plot,
        edges,
        by_source,
        reference=reference,
        reference_label={"normal": "NO", "inverted": "IO"}[other],
        title=f"{experiment.name}: {ordering} ordering, {exposure.days:g} days",
        energy_label="prompt energy [MeV]" if energy == "prompt" else "neutrino energy [MeV]",
    )
    return str(path)


def summary_table(result: dict[str, Any]) -> str:
    """A short human-readable summary of a prediction."""
    lines = [
        (
            f"{result['experiment']}: {result['energy']} energy {result['bin_edges'][0]:g}–"
            f"{result['bin_edges'][-1]:g} MeV, {len(result['counts'])} bins, "
            f"{result['exposure']['days']:g} days × ε {result['exposure']['efficiency']:g}"
        ),
    ]
    for name, total in result["totals_by_source"].items():
        lines.append(f"  {name:<16} {total:>14.1f}")
    lines.append(f"  {'total':<16} {result['total']:>14.1f}")
    peak = int(np.argmax(result["counts"]))
    lines.append(
        f"  peak bin {peak} at {result['bin_edges'][peak]:.3f} MeV: {result['counts'][peak]:.1f}"
    )
    if result.get("plot"):
        lines.append(f"  plot: {result['plot']}")
    return "\n".join(lines)
