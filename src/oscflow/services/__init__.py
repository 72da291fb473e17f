"""Downstream services run on a model version: one module per service, found by name.

A service module ``oscflow.services.<name>`` is the whole contract between a service and the
event workers (``oscflow.events``); the workers never branch on a service's name. It exposes:

``JOB: str``
    its Hydra job (``conf/<JOB>.yaml``), composed with ``oscflow.config.load``.
``promotion_overrides(model_uri: str) -> list[str]``
    the overrides of the run made when a version is promoted (the model first; the service's
    default configuration otherwise).
``record(cfg: DictConfig, tags: Mapping[str, str]) -> dict``
    run the service on ``cfg`` and record one MLflow run carrying ``tags`` (the workers pass
    model name/version, service, config hash and triggering event). Returns the JSON result
    with ``mlflow_run_id``. On failure the run is ended FAILED with the reason and the error
    is re-raised.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import ConfigError

REQUIRED = ("JOB", "promotion_overrides", "record")


def load_service(name: str) -> ModuleType:
    """The service module ``oscflow.services.<name>`` (or, for a dotted name, that module:
    services outside the package), checked against the contract."""
    if not all(part.isidentifier() for part in name.split(".")):
        raise ConfigError("service", f"{name!r} is not a service name", "e.g. fit, sensitivity")
    path = name if "." in name else f"{__name__}.{name}"
    try:
        module = importlib.import_module(path)
    except ModuleNotFoundError as exc:
        if exc.name != path:
            raise
        raise ConfigError(
            "service", f"no service {name!r} (no module {path})", "check the name"
        ) from exc
    missing = [attr for attr in REQUIRED if not hasattr(module, attr)]
    if missing:
        raise ConfigError(
            "service", f"{module.__name__} lacks {missing}", "implement the service contract"
        )
    return module
