"""DVC stage ``spectra``: space-filling parameter sets and their exact binned spectra.

Writes ``<split>_params.npy`` (N, d; float64, columns = ``meta["inputs"]``) and
``<split>_spectra.npy`` (N, K; reactor IBD counts per bin at the reference exposure in
``meta["exposure"]``) for train/val/test, plus ``meta.json``. Backgrounds do not depend on the
parameters and are not part of the learned spectrum; their expected counts per bin are stored
once in ``backgrounds.npy`` with names in ``meta["backgrounds"]``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.format import open_memmap
from omegaconf import DictConfig

from ..config import bin_edges, to_container
from ..errors import ConfigError
from ..experiments import load_experiment
from ..experiments.base import finite, integer
from ..progress import progress_bar
from .evaluate import Evaluator, Predict, configured_scheduler, plan_workers
from .io import build_lock, code_fingerprint, read_meta, resumable_directory, write_json
from .sampling import SAMPLERS, SCALES, sample_box
from .simulate import pairs_dir, read_pairs

FORMAT = "oscflow.spectra/1"
SPLITS = ("train", "val", "test")
# data.spectra keys that say where chunks are evaluated, not what they hold: left out of the
# resume fingerprint and of meta.json, so a build on a cluster is the same bytes as a local one.
EXECUTION_KEYS = ("workers", "scheduler")


def spectra_dir(cfg: DictConfig) -> Path:
    return Path(cfg.paths.dataset_dir) / "spectra"


def run(cfg: DictConfig) -> dict[str, Any]:
    """Sample parameters, evaluate the exact predictor, write the splits atomically."""
    experiment = load_experiment(cfg.experiment)
    spec = cfg.data.spectra
    inputs = list(spec.inputs)
    if not inputs:
        raise ConfigError(
            "data.spectra.inputs", "no input parameters", "list at least one parameter"
        )
    unknown = [k for k in inputs if k not in experiment.parameters]
    if unknown:
        raise ConfigError(
            "data.spectra.inputs",
            f"unknown parameters {unknown}",
            f"use names from {list(experiment.parameters)}",
        )
    if spec.sampler not in SAMPLERS:
        raise ConfigError(
            "data.spectra.sampler", f"{spec.sampler!r} unknown", f"use one of {SAMPLERS}"
        )
    splits = {s: int(spec.splits[s]) for s in SPLITS}
    bad = [s for s, n in splits.items() if n < 1]
    if bad:
        raise ConfigError(
            f"data.spectra.splits.{bad[0]}", "must be >= 1", "give a positive number of spectra"
        )
    ranges, scales = _sampling(experiment, spec, inputs)
    train_ranges = training_box(experiment, spec.get("margin"), inputs, ranges, scales)
    # data.spectra.fixed: values of non-input parameters for this dataset, over `params` (e.g.
    # JSNS²'s spectrum per unit sin²2θμe, conf/data/jsns2_demo.yaml).
    own = dict(spec.get("fixed") or {})
    clash = [k for k in own if k in inputs]
    if clash:
        raise ConfigError(
            "data.spectra.fixed",
            f"{clash} are sampled inputs of this dataset",
            "fix only parameters that are not in data.spectra.inputs",
        )
    fixed = experiment.validate_params(
        {k: v for k, v in cfg.params.items() if k not in inputs and k not in own}
    )
    fixed.update(experiment.validate_params(own, prefix="data.spectra.fixed"))
    exposure = experiment.exposure(float(cfg.exposure.days), float(cfg.exposure.efficiency))
    edges = bin_edges(cfg.binning)
    energy = str(spec.energy)

    src = pairs_dir(cfg)
    method = str(spec.method)
    dtype = np.dtype(str(spec.dtype))
    chunk = int(spec.chunk)
    if chunk < 1:
        raise ConfigError("data.spectra.chunk", "must be >= 1", "give a positive integer")
    workers = spec.get("workers")
    if workers is not None:
        workers = integer(workers, "data.spectra.workers", 1, None)
    scheduler = configured_scheduler(spec.get("scheduler"))
    n_chunks = sum(-(-n // chunk) for n in splits.values())
    out = spectra_dir(cfg)
    uses_pairs = experiment.needs_pairs(energy, method)
    # The cluster first: an unreachable scheduler is refused before anything is written.
    with (
        Evaluator(
            plan_workers(workers, scheduler, sum(splits.values()), n_chunks), scheduler
        ) as ev,
        _build_locks(out, src if uses_pairs else None),
    ):
        pairs_meta = read_meta(src) if uses_pairs else None
        worker_spec = {
            "experiment": to_container(cfg.experiment),
            # absolute: workers of a remote scheduler run elsewhere; the stamp tells a
            # long-lived worker that the pairs were rebuilt since it cached a predictor
            "pairs": str(src.resolve()) if uses_pairs else None,
            "pairs_stamp": _stamp(src) if uses_pairs else None,
            "edges": edges.tolist(),
            "energy": energy,
            "method": method,
            "exposure": [exposure.days, exposure.efficiency],
        }
        fixed = {k: v for k, v in fixed.items() if experiment.parameters[k].kind == "oscillation"}
        # Everything the arrays depend on: a killed build is resumed only with the same inputs
        # (on however many workers: where chunks are evaluated does not change them).
        fingerprint = {
            "format": FORMAT,
            "code": code_fingerprint(),
            "experiment": worker_spec["experiment"],
            "spectra": _without_execution(to_container(spec)),
            "fixed": fixed,
            "binning": edges.tolist(),
            "exposure": worker_spec["exposure"],
            "pairs": pairs_meta,
        }
        totals: dict[str, float] = {}
        # In this process, or (the Daya Bay model takes ~30 s to build) only on the workers.
        local = None
        if ev.in_process:
            pairs = read_pairs(src) if uses_pairs else None
            local = Predict(experiment.predictor(edges, energy, method, pairs), exposure)
        sources = ev.prepare(worker_spec, local)
        with resumable_directory(out, fingerprint) as tmp:
            for i, (split, n) in enumerate(splits.items()):
                box = train_ranges if split == "train" else ranges
                points = sample_box(box, n, str(spec.sampler), int(spec.seed) + i, scales)
                np.save(tmp / f"{split}_params.npy", points)
                path = tmp / f"{split}_spectra.npy"
                shape = (n, len(edges) - 1)
                done = tmp / f"{split}.done.json"
                resume = path.is_file() and done.is_file()
                spectra = open_memmap(path, mode="r+" if resume else "w+", dtype=dtype, shape=shape)
                with progress_bar(f"spectra {split}", n) as advance:
                    ev.fill(inputs, points, fixed, spectra, done, chunk, advance)
                totals[split] = float(np.sum(spectra, dtype=np.float64))
                del spectra
            backgrounds = experiment.background_spectra(edges, exposure.days, energy)
            np.save(
                tmp / "backgrounds.npy",
                np.stack(list(backgrounds.values()))
                if backgrounds
                else np.zeros((0, len(edges) - 1)),
            )
            meta = {
                "format": FORMAT,
                "experiment": experiment.name,
                "dataset": cfg.data.name,
                "energy": energy,
                "bin_edges": edges.tolist(),
                "inputs": inputs,
                "ranges": {k: list(r) for k, r in zip(inputs, ranges, strict=True)},
                "training_ranges": {k: list(r) for k, r in zip(inputs, train_ranges, strict=True)},
                "units": {k: experiment.parameters[k].unit for k in inputs},
                "scales": dict(zip(inputs, scales, strict=True)),
                "fixed": fixed,
                "ordering": experiment.settings.ordering,
                "matter": experiment.settings.matter,
                "exposure": dataclasses.asdict(exposure),
                "sources": sources,
                "backgrounds": list(backgrounds),
                "splits": splits,
                "sum_counts": totals,
                "generator": {
                    "method": method,
                    "sampler": str(spec.sampler),
                    "seed": int(spec.seed),
                    "split_seeds": {s: int(spec.seed) + i for i, s in enumerate(SPLITS)},
                    "dtype": dtype.name,
                },
                "pairs": None
                if pairs_meta is None
                else {
                    "path": str(src),
                    "n_pairs": pairs_meta["n_pairs"],
                    "seed": pairs_meta["seed"],
                },
                "config": {
                    **to_container(cfg.data),
                    "spectra": _without_execution(to_container(spec)),
                },
            }
            write_json(tmp / "meta.json", meta)
    return {"path": str(out), "splits": splits}


def training_box(
    experiment: Any,
    margin: float | None,
    inputs: list[str],
    ranges: list[tuple[float, float]],
    scales: list[str],
) -> list[tuple[float, float]]:
    """The train split's box: each range widened on both sides by ``margin``
    (``data.spectra.margin``) of its width (of log x on a log scale). A network is least
    accurate at the faces of the box it was trained on, and a fit's best point can sit at a
    face of the box it may use; the ranges the surrogate serves (meta.json ``ranges``: fit
    bounds, the val and test splits, the promotion gates) stay the unwidened ones. Within the
    parameters' bounds."""
    fix = "give e.g. 0.05 (5 % of each range beyond both of its ends), or 0 for none"
    margin = finite(margin or 0.0, "data.spectra.margin", fix)
    if not 0.0 <= margin <= 0.5:
        raise ConfigError(
            "data.spectra.margin",
            f"{margin:g} is not a fraction of the range's width in [0, 0.5]",
            fix,
        )
    out = []
    for k, (lo, hi), scale in zip(inputs, ranges, scales, strict=True):
        if scale == "log":
            wide = float(np.log(hi / lo)) * margin
            lo_t, hi_t = lo * float(np.exp(-wide)), hi * float(np.exp(wide))
        else:
            lo_t, hi_t = lo - margin * (hi - lo), hi + margin * (hi - lo)
        b_lo, b_hi = experiment.parameters[k].bounds
        if (b_lo is not None and lo_t < b_lo) or (b_hi is not None and hi_t > b_hi):
            raise ConfigError(
                "data.spectra.margin",
                f"{margin:g} widens {k}'s range [{lo:g}, {hi:g}] to [{lo_t:g}, {hi_t:g}], "
                f"beyond its bounds {experiment.parameters[k].describe_bounds()}",
                f"lower the margin, or narrow data.spectra.ranges.{k}",
            )
        out.append((lo_t, hi_t))
    return out


def _sampling(
    experiment: Any, spec: DictConfig, inputs: list[str]
) -> tuple[list[tuple[float, float]], list[str]]:
    """The sampling box and scale of each input: the parameter's ``sampling_range`` (nominal ±
    n_sigma·σ) unless ``data.spectra.ranges`` gives [low, high] (within the parameter's bounds),
    on a linear scale unless ``data.spectra.scales`` says ``log`` (then 0 < low)."""
    own = dict(spec.get("ranges") or {})
    scale_cfg = {str(k): str(v) for k, v in (spec.get("scales") or {}).items()}
    for key, table in (("ranges", own), ("scales", scale_cfg)):
        stray = [k for k in table if k not in inputs]
        if stray:
            raise ConfigError(
                f"data.spectra.{key}", f"{stray} are not inputs", f"use names from {inputs}"
            )
    ranges, scales = [], []
    for k in inputs:
        param = experiment.parameters[k]
        if k in own:
            raw = own[k]
            key = f"data.spectra.ranges.{k}"
            if isinstance(raw, str) or len(raw) != 2:
                raise ConfigError(key, f"{raw!r} is not [low, high]", "give [low, high]")
            lo, hi = (param.check(x, key) for x in raw)
            if not lo < hi:
                raise ConfigError(key, f"[{lo:g}, {hi:g}] is empty or inverted", "low < high")
            ranges.append((lo, hi))
        else:
            ranges.append(param.sampling_range)
        scale = scale_cfg.get(k, "linear")
        if scale not in SCALES:
            raise ConfigError(f"data.spectra.scales.{k}", f"{scale!r} unknown", f"use {SCALES}")
        if scale == "log" and not ranges[-1][0] > 0:
            raise ConfigError(
                f"data.spectra.scales.{k}",
                f"a log scale needs a range above 0, not [{ranges[-1][0]:g}, {ranges[-1][1]:g}]",
                f"set data.spectra.ranges.{k} to [low, high] with 0 < low",
            )
        scales.append(scale)
    return ranges, scales


def _without_execution(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k not in EXECUTION_KEYS}


def _stamp(pairs: Path) -> list[int]:
    """Inode and modification time of the MC pairs' meta.json (replaced by each build)."""
    st = (pairs / "meta.json").stat()
    return [st.st_ino, st.st_mtime_ns]


@contextlib.contextmanager
def _build_locks(out: Path, pairs: Path | None) -> Iterator[None]:
    """The dataset's build lock for the whole build (a concurrent build of it waits), and the
    MC pairs' lock while they are read, so `simulate` cannot replace them mid-build (Dask
    workers re-read them; those of a remote cluster are not covered by this machine's lock).
    Always spectra before pairs: no lock-order deadlock."""
    with build_lock(out), build_lock(pairs) if pairs is not None else contextlib.nullcontext():
        yield
