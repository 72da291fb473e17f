"""Hydra configuration: one entry point that composes a job's config from ``conf/``.

Jobs compose with Hydra's compose API so that bad overrides become ``ConfigError``s that name
the key, and so that jobs run in the caller's working directory (DVC stages rely on that).

Every composed config is checked before a job sees it (``check_values``): no value anywhere is
NaN or infinite; a key whose default is a number takes only numbers, one whose default is a
boolean only ``true``/``false``; count-like keys (``INTEGER_KEYS``) take only integers; the
``binning`` and ``exposure`` nodes are in range. Experiment-specific ranges (cores, detector,
parameter bounds) are the experiment plug-in's (``oscflow.experiments``).
"""

from __future__ import annotations

import functools
import math
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast, overload

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.errors import (
    ConfigCompositionException,
    HydraException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import ConfigError, OverrideError
from .experiments.base import check_exposure, integer, is_number, show
from .experiments.base import finite as number

# Hydra's compose API keeps global state (GlobalHydra): one composition at a time per process
# (the event workers compose service configs from several threads).
_COMPOSE_LOCK = threading.RLock()


# Largest binning.nbins: the exact predictors hold nbins × experiment.response_fine_bins
# (1500) float64 response matrices, ~1.2 GB at 100 000 bins; more is a typo, not a spectrum.
MAX_BINS = 100_000
MIN_BIN_WIDTH = 1e-6  # MeV
MAX_ENERGY = 1e6  # MeV: any binning window ends below 1 TeV
# Keys (last path component) that count things: integers only, never silently truncated, in
# [lo, hi] (None: open). Applied where the key's default is an integer.
_SEEDS = (0, 2**32 - 1)  # numpy's legacy seeding and Lightning's seed_everything are 32-bit
INTEGER_KEYS: dict[str, tuple[int | None, int | None]] = {
    "nbins": (1, MAX_BINS),
    "n_pairs": (1, None),
    "seed": _SEEDS,
    "chunk": (1, None),
    "n_toys": (1, None),
    "gof_toys": (0, None),
    "points": (1, None),
    "strategy": (0, 2),  # MIGRAD strategies
    "max_calls": (1, None),
    "response_fine_bins": (1, None),
    "batch_size": (1, None),
    "eval_batch_size": (1, None),
    "num_workers": (0, None),
    "workers": (1, None),
    "count": (0, None),
    "retries": (0, None),
    "port": (0, 65535),
    "plot_points": (0, None),
    "trial_number": (0, None),
}
INTEGER_PARENTS: dict[str, tuple[int | None, int | None]] = {
    "splits": (0, None),  # data.spectra.splits.{train,val,test}
}
# Subtrees handed to other libraries as they are (Lightning's Trainer takes "auto" for a
# number, fractions for counts) or owned by Hydra itself: not checked here.
UNCHECKED = frozenset({"hydra", "trainer"})


def config_dir() -> Path:
    """``$OSCFLOW_CONFIG_DIR``, else ``./conf``, else the ``conf/`` of the source checkout."""
    env = os.environ.get("OSCFLOW_CONFIG_DIR")
    if env:
        return Path(env).resolve()
    local = Path.cwd() / "conf"
    if (local / "predict.yaml").is_file():
        return local.resolve()
    return (Path(__file__).resolve().parents[2] / "conf").resolve()


# What a config group's name means where a job does not choose it that way: said in the error.
GROUP_HINTS = {
    "model": "a registered surrogate is model_uri=<uri> (model= chooses the training "
    "architecture, conf/model/)",
    "data": "what a fit fits is observation=asimov|toy|real|file (data= chooses the dataset "
    "whose MC pairs the exact predictors use, conf/data/)",
}


def _group_error(cdir: Path, job: str, message: str) -> ConfigError | None:
    """A clear error for a config group option that does not exist, or a group that ``job``
    does not choose: the options there are, and what the user may have meant."""
    import re

    missing = re.search(r"Could not find '([\w/]+)/([^']+)'", message)
    unused = re.search(r"Could not override '(\w+)'\. No match in the defaults list", message)
    if missing:
        group, option = missing.groups()
        options = sorted(p.stem for p in (cdir / group).glob("*.yaml"))
        fix = f"choose {group}= one of {', '.join(options)}"
        meant = {"model": ":" in option, "data": option in ("asimov", "toy", "real", "file")}
        hint = GROUP_HINTS.get(group) if meant.get(group) or "." in option else None
        return ConfigError(
            group,
            f"no {group} config {option!r} in conf/{group}/",
            f"{fix}; {hint}" if hint else fix,
        )
    if unused and (cdir / unused.group(1)).is_dir():
        group = unused.group(1)
        return ConfigError(
            group,
            f"`{job}` does not use the config group {group}",
            GROUP_HINTS.get(group, f"drop {group}=; `oscflow <command> --help` lists its groups"),
        )
    return None


def _key_of(message: str) -> str:
    for marker in ("Could not override '", "Key '", "key '"):
        if marker in message:
            return message.split(marker, 1)[1].split("'", 1)[0]
    return "overrides"


def load(job: str, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose ``conf/<job>.yaml`` with Hydra-style ``key=value`` overrides, fully resolved
    and checked (``check_values``)."""
    with _COMPOSE_LOCK:
        return _load(job, overrides)


def _load(job: str, overrides: Sequence[str]) -> DictConfig:
    if not job.isidentifier():
        raise ConfigError("config", f"{job!r} is not a job name", "name a conf/<job>.yaml")
    for o in overrides:
        if "=" not in o:
            raise OverrideError(
                o, "an override must have the form key=value", "write e.g. params.sin2_th12=0.31"
            )
    cdir = config_dir()
    if not (cdir / f"{job}.yaml").is_file():  # a job is a config file: core or a service's
        raise ConfigError(
            "config",
            f"no {job}.yaml in {cdir}",
            "run from the repository root or set OSCFLOW_CONFIG_DIR (a service adds its "
            "conf/<JOB>.yaml)",
        )
    cfg: DictConfig | None = None
    try:
        with initialize_config_dir(config_dir=str(cdir), version_base="1.3", job_name=job):
            cfg = compose(config_name=job, overrides=list(overrides))
        OmegaConf.resolve(cfg)
    except OverrideParseException as exc:
        bad = _unparsable(overrides)
        raise OverrideError(
            bad,
            f"malformed override ({' '.join(str(exc).split())})",
            "write key=value; quote values that contain spaces, brackets or commas",
        ) from None
    except MissingConfigException as exc:
        group_error = _group_error(cdir, job, str(exc))
        if group_error is not None:
            raise group_error from None
        raise ConfigError(
            _key_of(str(exc)),
            str(exc).splitlines()[0],
            "choose one of the available options listed above",
        ) from None
    except (ConfigCompositionException, HydraException, OmegaConfBaseException) as exc:
        unknown = _unknown_key(job, overrides)
        if unknown is not None:
            raise unknown from None
        cause = exc.__cause__ or exc
        group_error = _group_error(cdir, job, str(cause))
        if group_error is not None:
            raise group_error from None
        text = str(cause).splitlines()[0]
        key = _unresolvable(cfg, overrides) or _key_of(str(exc) + " " + str(cause))
        raise ConfigError(
            key,
            f"invalid override ({text})",
            "check the key name and value; `oscflow <command> --cfg` prints the config",
        ) from None
    try:
        defaults: DictConfig | None = _defaults(job, overrides)
    except (HydraException, OmegaConfBaseException):
        defaults = None  # e.g. a required value only the overrides give: no type checks
    check_values(cfg, defaults, overrides)
    return cfg


def _unparsable(overrides: Sequence[str]) -> str:
    """The first override Hydra's grammar cannot parse (to name it in the message)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for o in overrides:
        try:
            parser.parse_override(o)
        except HydraException:
            return o
    return "overrides"


def _unresolvable(cfg: DictConfig | None, overrides: Sequence[str]) -> str | None:
    """The key of the override whose interpolation (``${…}``) cannot be resolved, if any."""
    if cfg is None:
        return None
    for o in overrides:
        key, _, value = o.partition("=")
        key = key.lstrip("+~")
        if "${" not in value:
            continue
        try:
            OmegaConf.select(cfg, key, throw_on_resolution_failure=True)
        except OmegaConfBaseException:
            return key
    return None


def _group_overrides(overrides: Sequence[str]) -> tuple[str, ...]:
    """The overrides that choose config groups (``experiment=dayabay``, ``observation=toy``)."""
    cdir = config_dir()
    out = []
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~").split("@", 1)[0]
        if "/" in key or ("." not in key and (cdir / key).is_dir()):
            out.append(o)
    return tuple(out)


def _signature(cdir: Path) -> tuple[tuple[str, int], ...]:
    """Modification times of every config file: a cached composition is stale if they change."""
    return tuple(
        sorted((str(p), p.stat().st_mtime_ns) for p in cdir.rglob("*.yaml") if p.is_file())
    )


def _defaults(job: str, overrides: Sequence[str]) -> DictConfig:
    """The job's config with only the group choices of ``overrides``: the defaults that the
    value overrides are checked against."""
    cdir = config_dir()
    return _compose_defaults(str(cdir), job, _group_overrides(overrides), _signature(cdir))


@functools.lru_cache(maxsize=32)
def _compose_defaults(
    cdir: str,
    job: str,
    groups: tuple[str, ...],
    signature: tuple[tuple[str, int], ...],  # noqa: ARG001 - part of the cache key
) -> DictConfig:
    with initialize_config_dir(config_dir=cdir, version_base="1.3", job_name=job):
        base = compose(config_name=job, overrides=list(groups))
    OmegaConf.resolve(base)
    OmegaConf.set_readonly(base, True)
    return base


def _unknown_key(job: str, overrides: Sequence[str]) -> ConfigError | None:
    """If an override names a key the config does not have, say which keys exist there."""
    try:
        base: Any = _defaults(job, overrides)
    except (HydraException, OmegaConfBaseException):
        return None
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        if "/" in key or key.startswith("hydra"):
            continue
        parts = key.split(".")
        node: Any = base
        for depth, part in enumerate(parts):
            container = node
            if OmegaConf.is_list(container):
                if part.isdigit() and int(part) < len(container):
                    node = container[int(part)]
                    continue
                return ConfigError(
                    key, f"index {part} is out of range", f"use 0..{len(container) - 1}"
                )
            if not OmegaConf.is_dict(container) or part not in container:
                where = ".".join(parts[:depth]) or "the top level"
                options = (
                    ", ".join(str(k) for k in container) if OmegaConf.is_dict(container) else ""
                )
                return ConfigError(
                    key,
                    f"unknown key: {where} has no {part!r}",
                    f"use one of: {options}" if options else "remove this override",
                )
            node = container[part]
    return None


_MISSING = object()


def _leaves(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[Any, Any, tuple[str, ...]]]:
    """(container, key, path) of every scalar in a (resolved) config tree."""
    keys: Any = list(node) if isinstance(node, DictConfig) else range(len(node))
    for key in keys:
        value = node[key]
        if isinstance(value, DictConfig | ListConfig):
            yield from _leaves(value, (*path, str(key)))
        else:
            yield node, key, (*path, str(key))


def _at(node: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if isinstance(node, DictConfig) and part in node:
            node = node[part]
        elif isinstance(node, ListConfig) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path)


def check_values(
    cfg: DictConfig, defaults: DictConfig | None = None, overrides: Sequence[str] = ()
) -> None:
    """Refuse nonsense values in a composed config (see the module docstring); converts
    integral floats of integer keys (``nbins=400.0``) to ints in place."""
    # The nodes with their own ranges first: their messages say more.
    binning = cfg.get("binning")
    if isinstance(binning, DictConfig) and {"emin", "emax", "nbins"} <= set(binning):
        binning.nbins = len(bin_edges(binning)) - 1
    exposure = cfg.get("exposure")
    if isinstance(exposure, DictConfig):
        check_exposure(exposure.get("days"), exposure.get("efficiency"))
    overridden = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    for container, key, path in _leaves(cfg):
        if path[0] in UNCHECKED:
            continue
        value = container[key]
        name = _dotted(path)
        default = _at(defaults, path) if defaults is not None else _MISSING
        intended = isinstance(default, float) and repr(default) == repr(value)  # conf/ says so
        if isinstance(value, float) and not math.isfinite(value) and not intended:
            raise ConfigError(
                name,
                f"{value} is not a finite number{_allowed(cfg, path)}",
                f"give a finite value{_default_hint(default)}",
            )
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(
                    name, f"{show(value)} is not true or false", f"set {name}=true or false"
                )
        elif is_number(default):
            if not is_number(value):
                via = "" if name in overridden else " (set through an interpolation)"
                raise ConfigError(
                    name,
                    f"{show(value)}{via} is not a number",
                    f"give a number{_default_hint(default)}",
                )
            limits = INTEGER_KEYS.get(path[-1])
            if limits is None and len(path) > 1:
                limits = INTEGER_PARENTS.get(path[-2])
            if isinstance(default, int) and limits is not None and path[-1] != "nbins":
                container[key] = integer(value, name, *limits)


def _allowed(cfg: DictConfig, path: tuple[str, ...]) -> str:
    """The allowed range of a parameter value (``params.<name>``) from its spec in conf/."""
    if len(path) == 2 and path[0] in ("params", "start"):
        bounds = _at(cfg, ("experiment", "parameters", path[1], "bounds"))
        if isinstance(bounds, ListConfig) and len(bounds) == 2:
            lo = "-inf" if bounds[0] is None else bounds[0]
            hi = "+inf" if bounds[1] is None else bounds[1]
            return f"; allowed: [{lo}, {hi}] (experiment.parameters.{path[1]}.bounds)"
    return ""


def _default_hint(default: Any) -> str:
    return f" (default {default})" if is_number(default) else ""


@overload
def to_container(cfg: DictConfig) -> dict[str, Any]: ...
@overload
def to_container(cfg: ListConfig) -> list[Any]: ...
def to_container(cfg: DictConfig | ListConfig) -> dict[str, Any] | list[Any]:
    """``cfg`` resolved, as plain Python containers: a mapping node as a dict (the keys of
    oscflow's configs are str), a list node (e.g. ``experiment.cores``) as a list."""
    out = OmegaConf.to_container(cfg, resolve=True)
    if isinstance(cfg, ListConfig):
        return cast("list[Any]", out)
    return cast("dict[str, Any]", out)


def bin_edges(binning: Any) -> Any:
    """Bin edges (MeV) from a ``binning`` node {emin, emax, nbins}, validated: finite window
    emin >= 0, emin < emax, nbins an integer in [1, MAX_BINS]."""
    fix = "e.g. binning.emin=0.8 binning.emax=8.8 binning.nbins=400"
    try:
        raw = (binning.emin, binning.emax, binning.nbins)
    except (AttributeError, KeyError, OmegaConfBaseException):
        raise ConfigError("binning", "needs emin, emax and nbins", fix) from None
    emin = number(raw[0], "binning.emin", f"give a finite energy in MeV, {fix}")
    emax = number(raw[1], "binning.emax", f"give a finite energy in MeV, {fix}")
    nbins = integer(
        raw[2],
        "binning.nbins",
        1,
        MAX_BINS,
        " (the exact predictors hold nbins × response_fine_bins matrices, ~1.2 GB at the maximum)",
    )
    if not emin < emax:
        raise ConfigError(
            "binning.emin",
            f"window [{emin:g}, {emax:g}] MeV is inverted or empty",
            "set binning.emin < binning.emax",
        )
    if emin < 0:
        raise ConfigError("binning.emin", f"{emin:g} MeV is negative", "set binning.emin >= 0")
    if emax > MAX_ENERGY:
        raise ConfigError(
            "binning.emax",
            f"{emax:g} MeV is above {MAX_ENERGY:g} MeV (1 TeV: no reactor or solar neutrino "
            "spectrum reaches it)",
            f"set binning.emax <= {MAX_ENERGY:g} (the experiment may allow less)",
        )
    # Rounded so that edges read back from JSON as the decimals the user typed.
    edges = np.round(np.linspace(emin, emax, nbins + 1), 12)
    if not np.all(np.diff(edges) >= MIN_BIN_WIDTH):
        raise ConfigError(
            "binning.nbins",
            f"{nbins} bins in [{emin:g}, {emax:g}] MeV are narrower than {MIN_BIN_WIDTH:g} MeV "
            "(1 eV, far below any detector's resolution)",
            "widen the window or use fewer bins",
        )
    return edges
