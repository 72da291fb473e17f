"""DVC stage ``simulate``: detector Monte Carlo (E_ν, E_rec) pairs without oscillation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from ..config import to_container
from ..experiments import load_experiment
from ..physics.detector import EventSample
from ..physics.predictors import MCPairs, SamplingPdf
from ..progress import progress_bar
from .io import atomic_directory, build_lock, load_array, read_meta, write_json

# /2: events carry their deposited energy (non-linearity parameters are exact inputs).
FORMAT = "oscflow.mc_pairs/2"
DTYPES = {
    "enu": np.float64,
    "e_vis": np.float32,
    "z": np.float32,
    "radius": np.float32,
    "e_dep": np.float32,
}


def pairs_dir(cfg: DictConfig) -> Path:
    """The MC pairs of the configured dataset (``paths.pairs_dir``)."""
    return Path(cfg.paths.get("pairs_dir") or Path(cfg.paths.dataset_dir) / "pairs")


def write_pairs(directory: Path, pairs: MCPairs, meta: dict[str, Any]) -> None:
    with atomic_directory(directory) as tmp:
        for name, dtype in DTYPES.items():
            np.save(tmp / f"{name}.npy", getattr(pairs.events, name).astype(dtype))
        np.save(tmp / "sampling_edges.npy", pairs.pdf.edges)
        np.save(tmp / "sampling_density.npy", pairs.pdf.density)
        write_json(tmp / "meta.json", {"format": FORMAT, "n_pairs": pairs.size, **meta})


def read_pairs(directory: str | Path) -> MCPairs:
    """Load MC pairs written by ``write_pairs`` (arrays memory-mapped, E_ν and E_vis in MeV)."""
    meta = read_meta(directory)
    if meta.get("format") != FORMAT:
        msg = f"{directory}: format {meta.get('format')!r} is not {FORMAT!r}; rebuild with `dvc repro`"
        raise ValueError(msg)
    events = EventSample(**{name: load_array(directory, name) for name in DTYPES})
    pdf = SamplingPdf(
        edges=np.asarray(load_array(directory, "sampling_edges")),
        density=np.asarray(load_array(directory, "sampling_density")),
    )
    return MCPairs(events=events, pdf=pdf)


def load_pairs(cfg: DictConfig, experiment: Any) -> tuple[MCPairs, str]:
    """MC pairs for an exact predictor as ``cfg.pairs`` asks: ``auto`` (the simulate stage's
    output if present, else simulated here), ``simulate``, or a pairs directory. Returns the
    pairs and where they came from."""
    from ..errors import ConfigError

    choice = str(cfg.pairs)
    if choice == "simulate":
        return experiment.simulate_pairs(int(cfg.mc.n_pairs), int(cfg.mc.seed)), "simulated"
    path = pairs_dir(cfg) if choice == "auto" else Path(choice)
    if (path / "meta.json").is_file():
        return read_pairs(path), str(path)
    if choice != "auto":
        raise ConfigError(
            "pairs",
            f"no MC pairs at {path}",
            "give a pairs directory, or pairs=auto / pairs=simulate",
        )
    return experiment.simulate_pairs(int(cfg.mc.n_pairs), int(cfg.mc.seed)), "simulated"


def pairs_loader(cfg: DictConfig, experiment: Any) -> Callable[[], tuple[MCPairs, str]]:
    """A loader for ``Experiment.exact_predictor``: :func:`load_pairs` on its first call (only
    if the predictor needs MC pairs), the same pairs on later calls (e.g. both orderings)."""
    cache: list[tuple[MCPairs, str]] = []

    def load() -> tuple[MCPairs, str]:
        if not cache:
            cache.append(load_pairs(cfg, experiment))
        return cache[0]

    return load


def run(cfg: DictConfig) -> dict[str, Any]:
    """Simulate ``data.simulate.n_pairs`` events and write them atomically, all under the
    pairs' build lock: a concurrent build of the same pairs (or a ``spectra`` build reading
    them) finishes first, and the published pairs are exactly one run's."""
    experiment = load_experiment(cfg.experiment)
    sim = cfg.data.simulate
    n = int(sim.n_pairs)
    out = pairs_dir(cfg)
    with build_lock(out):
        return _simulate_and_write(cfg, experiment, n, out)


def _simulate_and_write(cfg: DictConfig, experiment: Any, n: int, out: Path) -> dict[str, Any]:
    sim = cfg.data.simulate
    corrections = cfg.experiment.get("reactor")  # the flux corrections the pdf includes
    with progress_bar("simulate MC pairs", n) as advance:
        pairs = experiment.simulate_pairs(n, int(sim.seed), int(sim.chunk), advance)
    meta = {
        "experiment": experiment.name,
        "dataset": cfg.data.name,
        "seed": int(sim.seed),
        "units": {
            "enu": "MeV",
            "e_vis": "MeV",
            "z": "standard normal",
            "radius": "m",
            "e_dep": "MeV",
        },
        "detector": to_container(cfg.experiment.detector),
        "generator": {
            "cores": to_container(cfg.experiment.cores),
            "fission_fractions": to_container(cfg.experiment.fission_fractions),
            "spectrum_extrapolation": cfg.experiment.spectrum_extrapolation,
            "reactor": to_container(corrections) if corrections is not None else {},
            "neutrino_energy_max": cfg.experiment.neutrino_energy_max,
        },
    }
    write_pairs(out, pairs, meta)
    return {"path": str(out), "n_pairs": n}
