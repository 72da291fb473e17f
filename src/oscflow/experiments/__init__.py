"""Experiment plug-ins: one sub-package per experiment, selected by ``experiment.name``.

A plug-in module exposes ``build(cfg) -> Experiment`` where ``cfg`` is the ``experiment``
node of the Hydra config. Adding an experiment means adding a module and a config file
``conf/experiment/<name>.yaml``; nothing here changes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConfigError
from .base import Experiment, ParameterSpec

__all__ = ["Experiment", "ParameterSpec", "load_experiment"]


def load_experiment(cfg: Mapping[str, Any]) -> Experiment:
    """Build the experiment plug-in named by ``cfg["name"]``."""
    name = cfg.get("name")
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError("experiment.name", f"{name!r} is not a plug-in name", "set it, e.g. juno")
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise ConfigError(
            "experiment.name",
            f"no experiment plug-in {name!r} (no module oscflow.experiments.{name})",
            "choose an experiment that has a file in conf/experiment/",
        ) from exc
    build: Callable[[Mapping[str, Any]], Experiment] = module.build
    return build(cfg)
