"""What an MLflow registry event asks for: a validation on a new version, the downstream
services on a promotion to the configured alias. Event types we do not route are refused."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

VERSION_CREATED = "model_version.created"
ALIAS_CREATED = "model_version_alias.created"
ROUTED = (VERSION_CREATED, ALIAS_CREATED)


class EventError(ValueError):
    """A body that is not a routable MLflow registry event (the reason says why)."""


@dataclass(frozen=True)
class JobSpec:
    """One service run asked for by an event."""

    service: str
    model: str
    version: str
    event_id: str | None = None


# The ledger's column sizes (events.ledger.EVENTS): longer values are refused here, not there.
MAX_TEXT = {"name": 256, "alias": 256, "version": 32, "timestamp": 64}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_VERSION = re.compile(r"[0-9]{1,32}")


def _show(value: Any, limit: int = 60) -> str:
    """A short, ASCII-only rendering of a value from the body (safe in a JSON error)."""
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "an array"
    text = ascii(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _text(event: str, field: str, value: Any) -> str:
    """Field ``field`` (``data.name``, ...) as a string the ledger can store, or EventError."""
    limit = MAX_TEXT[field.rsplit(".", 1)[-1]]
    if not isinstance(value, str):
        raise EventError(f"{event}: {field} must be a string, not {_show(value)}")
    if len(value) > limit:
        raise EventError(f"{event}: {field} is longer than {limit} characters")
    if _CONTROL.search(value):
        raise EventError(f"{event}: {field} {_show(value)} contains control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise EventError(
            f"{event}: {field} {_show(value)} is not valid Unicode (lone surrogate)"
        ) from None
    return value


def parse(body: bytes) -> dict[str, Any]:
    """MLflow's webhook body ``{"entity", "action", "timestamp", "data"}`` → our event dict.

    Anything else raises EventError with the reason (the intake answers 400 with it): a body
    that is not UTF-8 JSON (NaN/Infinity, nesting too deep or integers too long included), not an
    object, not a routed event type, or whose fields have the wrong type: ``data.name`` and
    ``data.alias`` non-empty strings, ``data.version`` a positive integer (as MLflow sends it, a
    string of digits), ``timestamp`` a string, a number or absent."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventError(f"the body is not UTF-8 ({exc})") from None
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise EventError("malformed JSON body (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, integers with too many digits
        raise EventError(f"malformed JSON body ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict):
        raise EventError('the body must be an object with "entity", "action" and "data"')
    entity, action = doc.get("entity"), doc.get("action")
    event = f"{entity}.{action}" if isinstance(entity, str) and isinstance(action, str) else None
    if event not in ROUTED:
        shown = (
            _show(event) if event is not None else f"entity {_show(entity)}, action {_show(action)}"
        )
        raise EventError(f"unknown event type {shown} (handled: {', '.join(ROUTED)})")
    data = doc["data"]
    required = ("name", "version", "alias") if event == ALIAS_CREATED else ("name", "version")
    missing = [k for k in required if data.get(k) in (None, "")]
    if missing:
        raise EventError(f"{event} without {', '.join(missing)}")
    version = data["version"]
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) or not _VERSION.fullmatch(version) or int(version) < 1:
        raise EventError(
            f"{event}: data.version must be a positive integer (as a string), "
            f"not {_show(data['version'])}"
        )
    timestamp = doc.get("timestamp")
    if isinstance(timestamp, str):
        timestamp = _text(event, "timestamp", timestamp)
    elif isinstance(timestamp, float):
        if not math.isfinite(timestamp):  # 1e999 parses as inf
            raise EventError(f"timestamp {_show(timestamp)} is not a finite number")
    elif timestamp is not None and (isinstance(timestamp, bool) or not isinstance(timestamp, int)):
        raise EventError(f"timestamp must be a string or a number, not {_show(timestamp)}")
    return {
        "event": event,
        "model": _text(event, "data.name", data["name"]),
        "version": version,
        "alias": _text(event, "data.alias", data["alias"]) if event == ALIAS_CREATED else None,
        "timestamp": timestamp,
    }


def effective(routing: Mapping[str, Any]) -> dict[str, Any]:
    """The platform's routing: each service's own ``ROUTES`` (``oscflow.services``) plus the
    routes of ``routing`` (``conf/platform.yaml``), less the services in
    ``routing.disabled``: {"on_version_created": [service], "on_alias": {alias: [service]}}."""
    from ..services import default_routes

    off = {str(s) for s in routing.get("disabled") or ()}
    own = default_routes()

    def merged(*groups: Any) -> list[str]:
        out: list[str] = []
        for group in groups:
            out += [str(s) for s in group or () if str(s) not in off and str(s) not in out]
        return out

    conf_alias = routing.get("on_alias") or {}
    aliases = [*own["on_alias"], *(str(a) for a in conf_alias if a not in own["on_alias"])]
    return {
        "on_version_created": merged(own["on_version_created"], routing.get("on_version_created")),
        "on_alias": {
            a: merged(own["on_alias"].get(a), conf_alias.get(a))
            for a in aliases
            if merged(own["on_alias"].get(a), conf_alias.get(a))
        },
    }


def jobs_for(event: Mapping[str, Any], routing: Mapping[str, Any]) -> list[JobSpec]:
    """The jobs an event asks for under ``routing`` (as ``effective`` returns it:
    on_version_created; on_alias: alias → services)."""
    kind, model, version = event["event"], event["model"], str(event["version"])
    event_id = event.get("delivery_id")
    services: Sequence[str] = ()
    if kind == VERSION_CREATED:
        services = routing["on_version_created"]
    elif kind == ALIAS_CREATED:
        services = routing["on_alias"].get(str(event.get("alias")), ())
    return [JobSpec(str(s), model, version, event_id) for s in services]
