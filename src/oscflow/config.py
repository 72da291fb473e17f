"""Hydra configuration: one entry point that composes a job's config from ``conf/``.

Jobs compose with Hydra's compose API so that bad overrides become ``ConfigError``s that name
the key, and so that jobs run in the caller's working directory (DVC stages rely on that).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import ConfigError

# Hydra's compose API keeps global state (GlobalHydra): one composition at a time per process
# (the event workers compose service configs from several threads).
_COMPOSE_LOCK = threading.RLock()

JOBS = ("simulate", "spectra", "predict", "train", "platform", "validate", "fit", "sensitivity")


def config_dir() -> Path:
    """``$OSCFLOW_CONFIG_DIR``, else ``./conf``, else the ``conf/`` of the source checkout."""
    env = os.environ.get("OSCFLOW_CONFIG_DIR")
    if env:
        return Path(env).resolve()
    local = Path.cwd() / "conf"
    if (local / "predict.yaml").is_file():
        return local.resolve()
    return (Path(__file__).resolve().parents[2] / "conf").resolve()


def _key_of(message: str) -> str:
    for marker in ("Could not override '", "Key '", "key '"):
        if marker in message:
            return message.split(marker, 1)[1].split("'", 1)[0]
    return "overrides"


def load(job: str, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose ``conf/<job>.yaml`` with Hydra-style ``key=value`` overrides, fully resolved."""
    with _COMPOSE_LOCK:
        return _load(job, overrides)


def _load(job: str, overrides: Sequence[str]) -> DictConfig:
    if job not in JOBS:
        msg = f"unknown job {job!r}; jobs are {JOBS}"
        raise ValueError(msg)
    for o in overrides:
        if "=" not in o:
            raise ConfigError(
                o, "an override must have the form key=value", "write e.g. params.sin2_th12=0.31"
            )
    cdir = config_dir()
    if not (cdir / f"{job}.yaml").is_file():
        raise ConfigError(
            "config",
            f"no {job}.yaml in {cdir}",
            "run from the repository root or set OSCFLOW_CONFIG_DIR",
        )
    try:
        with initialize_config_dir(config_dir=str(cdir), version_base="1.3", job_name=job):
            cfg = compose(config_name=job, overrides=list(overrides))
        OmegaConf.resolve(cfg)
    except MissingConfigException as exc:
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
        text = str(cause).splitlines()[0]
        key = _key_of(str(exc) + " " + str(cause))
        raise ConfigError(
            key,
            f"invalid override ({text})",
            "check the key name and value; `oscflow <command> --cfg` prints the config",
        ) from None
    return cfg


def _unknown_key(job: str, overrides: Sequence[str]) -> ConfigError | None:
    """If an override names a key the config does not have, say which keys exist there."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name=job):
        base = compose(config_name=job)
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


def to_container(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def bin_edges(binning: Any) -> Any:
    """Bin edges (MeV) from a ``binning`` node {emin, emax, nbins}, validated."""
    try:
        emin, emax, nbins = float(binning.emin), float(binning.emax), int(binning.nbins)
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(
            "binning",
            f"needs numbers emin, emax, nbins ({exc})",
            "e.g. binning.emin=0.8 binning.emax=8.8 binning.nbins=400",
        ) from None
    if not emin < emax:
        raise ConfigError(
            "binning.emin",
            f"window [{emin:g}, {emax:g}] MeV is inverted or empty",
            "set binning.emin < binning.emax",
        )
    if emin < 0:
        raise ConfigError("binning.emin", f"{emin:g} MeV is negative", "set binning.emin >= 0")
    if nbins < 1:
        raise ConfigError(
            "binning.nbins", f"{nbins} must be >= 1", "set binning.nbins to a positive integer"
        )
    # Rounded so that edges read back from JSON as the decimals the user typed.
    return np.round(np.linspace(emin, emax, nbins + 1), 12)
