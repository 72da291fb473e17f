"""The event intake: an HTTP receiver for MLflow's registry webhooks.

A delivery is accepted (202) only when it is small enough, signed with our secret (constant-time
check), fresh (|now − timestamp| ≤ ``intake.max_age_s``), not seen before (delivery id), a
routable event with fields of the right types, and persisted to the queue; anything else gets
a 4xx with the reason as JSON ``{"error": ...}`` — a 4xx also for a delivery we fail to process
for an unexpected reason (MLflow's retry would fail the same way; the reconciler catches up on
the registry's state). The one 5xx is 503 when the queue or ledger is unavailable: the delivery
was not kept, and MLflow's retry should bring it again."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..errors import ConfigError
from .queue import Queue
from .routing import EventError, parse
from .signing import SignatureError, verify

log = logging.getLogger("oscflow.intake")


def read_secret(cfg: DictConfig) -> str:
    """``intake.secret`` (OSCFLOW_WEBHOOK_SECRET) or the file ``oscflow up`` wrote."""
    if cfg.intake.secret:
        return str(cfg.intake.secret)
    path = Path(str(cfg.intake.secret_file))
    if not path.is_file():
        raise ConfigError(
            "intake.secret",
            f"no webhook secret: OSCFLOW_WEBHOOK_SECRET is unset and {path} does not exist",
            "run `oscflow up` (it generates one) or set OSCFLOW_WEBHOOK_SECRET",
        )
    return path.read_text().strip()


UNEXPECTED = "cannot process this delivery"
MAX_REASON = 500


def _error(status: int, reason: str) -> JSONResponse:
    """``{"error": reason}``, the reason made safe to encode (no lone surrogates) and short."""
    reason = reason.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(reason) > MAX_REASON:
        reason = reason[: MAX_REASON - 3] + "..."
    log.warning("rejected delivery: %s %s", status, reason)
    return JSONResponse({"error": reason}, status_code=status)


def create_app(cfg: DictConfig, queue: Queue | None = None) -> Starlette:
    secret = read_secret(cfg)
    queue = queue or Queue(cfg)
    limit = int(cfg.intake.max_body_bytes)
    max_age = float(cfg.intake.max_age_s)

    async def receive(request: Request) -> JSONResponse:
        try:
            return await _receive(request)
        except Exception as exc:  # a 4xx, not a 500 that MLflow would retry in vain
            log.exception("delivery failed unexpectedly")
            return _error(
                400,
                f"{UNEXPECTED} ({type(exc).__name__}: {exc}); it was not kept, the reconciler "
                "will enqueue what the registry asks for",
            )

    async def _receive(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length")
        if declared is not None and not declared.isdigit():
            return _error(400, f"invalid Content-Length header {declared[:40]!r}")
        if declared is not None and int(declared) > limit:
            return _error(413, f"body larger than {limit} bytes")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return _error(413, f"body larger than {limit} bytes")
        try:
            delivery_id = verify(secret, request.headers, body, max_age)
        except SignatureError as exc:
            return _error(401, str(exc))
        try:
            event = parse(body)
        except EventError as exc:
            return _error(400, str(exc))
        event["delivery_id"] = delivery_id
        try:
            fresh = queue.ledger.record_event(delivery_id, event, "webhook")
        except (OperationalError, InterfaceError, PoolTimeout, OSError) as exc:
            return _error(503, f"queue unavailable (ledger: {exc})")
        if not fresh:
            return _error(409, f"delivery {delivery_id} was already accepted (replay)")
        try:
            task_id = queue.enqueue_event(event)
        except Exception as exc:  # noqa: BLE001 — let MLflow retry a delivery we did not keep
            queue.ledger.forget_event(delivery_id)
            return _error(503, f"queue unavailable: {exc}")
        return JSONResponse(
            {"accepted": delivery_id, "event": event["event"], "task": task_id}, status_code=202
        )

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "queue_depth": queue.depth()})

    return Starlette(
        routes=[
            Route(str(cfg.intake.path), receive, methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
        ]
    )


def serve(cfg: DictConfig) -> None:
    """Run the intake in the foreground (``oscflow intake``)."""
    import uvicorn

    app = create_app(cfg)
    uvicorn.run(app, host=str(cfg.intake.host), port=int(cfg.intake.port), log_level="warning")
