"""Downstream services run on a model version: one module per service, discovered, never listed.

A service is a module: a package or file under ``oscflow.services``, a module named in an
entry point of the group ``oscflow.services`` (another package's service), or a dotted module
path in ``$OSCFLOW_SERVICES`` (comma-separated; e.g. a test's stand-in). Nothing in the
platform or the command line names a service: adding one is its module and its config
(``conf/<JOB>.yaml``). The module is the whole contract; it exposes:

``JOB: str``
    its Hydra job (``conf/<JOB>.yaml``), composed with ``oscflow.config.load``.
``promotion_overrides(model_uri: str) -> list[str]``
    the overrides of the run made for a version (the model first; the service's default
    configuration otherwise).
``record(cfg: DictConfig, tags: Mapping[str, str]) -> dict``
    run the service on ``cfg`` and record one MLflow run carrying ``tags`` (the workers pass
    model name/version, service, config hash and triggering event), with
    ``oscflow.tracking.service_run``. Returns the JSON result with ``mlflow_run_id``.

and optionally

``ROUTES: Routes``
    when the platform runs it by default: on every new version, and/or when a version gets
    one of the named aliases (``conf/platform.yaml: routing`` adds routes and can disable
    these); ``applies`` narrows every route of the service to the versions it can serve
    (e.g. the mass-ordering service needs a version paired with the other ordering).
``COMMAND: Command``
    its command line, ``oscflow <name> ...`` (the name is the module's last component).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from ..errors import ConfigError

REQUIRED = ("JOB", "promotion_overrides", "record")
ENTRY_POINTS = "oscflow.services"
ENV = "OSCFLOW_SERVICES"


@dataclasses.dataclass(frozen=True)
class Routes:
    """A service's default routing: on every new version, on these aliases; ``applies(tags)``
    (the version's tags → whether the service can serve it), None: every version."""

    on_version_created: bool = False
    on_alias: Sequence[str] = ()
    applies: Callable[[Mapping[str, str]], bool] | None = None


@dataclasses.dataclass(frozen=True)
class Command:
    """A service's command line. ``run(cfg)`` computes (and records, where the config says
    so); ``human(result)`` formats the result for a terminal (default: JSON);
    ``argv(words, overrides)`` turns the positional words into overrides (default: no words
    allowed), e.g. ``oscflow sensitivity solar`` → ``analysis=solar``; ``usage`` is the
    synopsis of those words. Overrides are conf/<job>.yaml's own keys: no other spellings."""

    summary: str
    run: Callable[[Any], dict[str, Any]]
    human: Callable[[dict[str, Any]], str] | None = None
    argv: Callable[[list[str], list[str]], list[str]] | None = None
    usage: str = ""


def _check(module: ModuleType) -> ModuleType:
    missing = [attr for attr in REQUIRED if not hasattr(module, attr)]
    if missing:
        raise ConfigError(
            "service", f"{module.__name__} lacks {missing}", "implement the service contract"
        )
    return module


def load_service(name: str) -> ModuleType:
    """The service module ``oscflow.services.<name>`` (or, for a dotted name, that module:
    services outside the package), checked against the contract."""
    if not name or not all(part.isidentifier() for part in name.split(".")):
        raise ConfigError("service", f"{name!r} is not a service name", "e.g. fit, sensitivity")
    path = name if "." in name else f"{__name__}.{name}"
    try:
        module = importlib.import_module(path)
    except ModuleNotFoundError as exc:
        if exc.name != path:
            raise
        raise ConfigError(
            "service",
            f"no service {name!r} (no module {path})",
            f"check the name; services found: {', '.join(discover()) or 'none'}",
        ) from exc
    return _check(module)


def _candidates() -> list[str]:
    names = [
        m.name
        for m in pkgutil.iter_modules(__path__)
        if not m.name.startswith("_") and m.name != "base"
    ]
    names += [ep.value for ep in entry_points(group=ENTRY_POINTS)]
    names += [n.strip() for n in os.environ.get(ENV, "").split(",") if n.strip()]
    return names


@functools.cache
def _discover(extra: str) -> dict[str, ModuleType]:
    del extra  # part of the cache key only
    found: dict[str, ModuleType] = {}
    for name in _candidates():
        path = name if "." in name else f"{__name__}.{name}"
        module = importlib.import_module(path)
        if all(hasattr(module, attr) for attr in REQUIRED):
            found[name] = module
    return found


def discover() -> dict[str, ModuleType]:
    """Every service: name (as routing and jobs refer to it) → module."""
    return _discover(os.environ.get(ENV, ""))


def commands() -> dict[str, tuple[str, Command]]:
    """The services with a command line: command word → (job, command)."""
    return {
        name.rsplit(".", 1)[-1]: (str(module.JOB), module.COMMAND)
        for name, module in discover().items()
        if isinstance(getattr(module, "COMMAND", None), Command)
    }


def condition(service: str) -> Callable[[Mapping[str, str]], bool] | None:
    """``service``'s ``ROUTES.applies`` (None: it serves every version)."""
    return getattr(getattr(discover().get(service), "ROUTES", None), "applies", None)


def default_routes() -> dict[str, Any]:
    """The services' own routing, in the shape of ``conf/platform.yaml: routing``."""
    created: list[str] = []
    on_alias: dict[str, list[str]] = {}
    for name, module in discover().items():
        routes = getattr(module, "ROUTES", None)
        if not isinstance(routes, Routes):
            continue
        if routes.on_version_created:
            created.append(name)
        for alias in routes.on_alias:
            on_alias.setdefault(str(alias), []).append(name)
    return {"on_version_created": created, "on_alias": on_alias}
