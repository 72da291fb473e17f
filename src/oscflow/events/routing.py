"""What an MLflow registry event asks for: a validation on a new version, the downstream
services on a promotion to the configured alias. Event types we do not route are refused."""

from __future__ import annotations

import json
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


def parse(body: bytes) -> dict[str, Any]:
    """MLflow's webhook body ``{"entity", "action", "timestamp", "data"}`` → our event dict."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventError(f"malformed JSON body ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict):
        raise EventError('the body must be an object with "entity", "action" and "data"')
    event = f"{doc.get('entity')}.{doc.get('action')}"
    if event not in ROUTED:
        raise EventError(f"unknown event type {event!r} (handled: {', '.join(ROUTED)})")
    data = doc["data"]
    missing = [k for k in ("name", "version") if not data.get(k)]
    if event == ALIAS_CREATED and not data.get("alias"):
        missing.append("alias")
    if missing:
        raise EventError(f"{event} without {', '.join(missing)}")
    return {
        "event": event,
        "model": str(data["name"]),
        "version": str(data["version"]),
        "alias": data.get("alias"),
        "timestamp": doc.get("timestamp"),
    }


def jobs_for(event: Mapping[str, Any], routing: Mapping[str, Any]) -> list[JobSpec]:
    """The jobs an event asks for under ``routing`` (on_version_created; on_alias: alias →
    services)."""
    kind, model, version = event["event"], event["model"], str(event["version"])
    event_id = event.get("delivery_id")
    services: Sequence[str] = ()
    if kind == VERSION_CREATED:
        services = routing["on_version_created"]
    elif kind == ALIAS_CREATED:
        services = routing["on_alias"].get(str(event.get("alias")), ())
    return [JobSpec(str(s), model, version, event_id) for s in services]
