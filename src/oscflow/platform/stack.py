"""``oscflow up|down|status|register-webhook``: the local stack on the embedded default
(or the team backends with ``stack=team``).

``up`` starts, in order and each only if not already running: the MLflow server (with the
webhook environment MLflow needs: a Fernet key to encrypt webhook secrets, http allowed, private
addresses allowed for a loopback receiver), the intake, the worker; then registers (or updates)
the webhook with the secret kept in ``state_dir/webhook_secret`` (mode 0600)."""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ..errors import OscflowError
from . import processes
from .secrets import fernet_key, private_file

COMPONENTS = ("mlflow", "intake", "worker")
EVENTS = ("model_version.created", "model_version_alias.created")


class StackError(OscflowError):
    """A part of the stack did not come up (the message says which and where its log is)."""


def _state_dir(cfg: DictConfig) -> Path:
    path = Path(str(cfg.state_dir)).resolve()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def mlflow_url(cfg: DictConfig) -> str:
    return f"http://{cfg.mlflow.host}:{cfg.mlflow.port}"


def intake_url(cfg: DictConfig) -> str:
    return f"http://{cfg.intake.host}:{cfg.intake.port}"


def webhook_env(cfg: DictConfig) -> dict[str, str]:
    """What the MLflow server needs to deliver signed webhooks to a loopback receiver."""
    key = os.environ.get("MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY") or private_file(
        _state_dir(cfg) / "fernet_key", fernet_key
    )
    return {
        "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": key,
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
    }


def _local_path(uri: str) -> str:
    if uri.startswith("sqlite:///"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///") :]).resolve())
    if "://" not in uri:
        return str(Path(uri).resolve())
    return uri


def _mlflow_cmd(cfg: DictConfig) -> list[str]:
    m = cfg.mlflow
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        _local_path(str(m.backend_store_uri)),
        "--artifacts-destination",
        _local_path(str(m.artifacts_destination)),
        "--host",
        str(m.host),
        "--port",
        str(m.port),
        "--workers",
        str(m.workers),
    ]
    if m.app_name:
        cmd += ["--app-name", str(m.app_name)]
    return cmd


def _oscflow_cmd(command: str, overrides: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "oscflow.cli", command, *overrides]


def _child_env() -> dict[str, str]:
    from ..config import config_dir

    return {"OSCFLOW_CONFIG_DIR": str(config_dir()), "PYTHONUNBUFFERED": "1"}


def _worker_alive(cfg: DictConfig, pid: int) -> bool:
    from ..events.ledger import Ledger

    beat = 3 * float(cfg.workers.heartbeat_s)
    return any(w["pid"] == pid for w in Ledger(str(cfg.ledger_url)).workers(beat))


def _start(cfg: DictConfig, name: str, overrides: Sequence[str]) -> str:
    state = _state_dir(cfg)
    info = processes.read(state, name)
    if info and info["alive"]:
        return f"already running (pid {info['pid']})"
    root = Path(str(cfg.paths.root_dir)).resolve()
    env = _child_env()
    if name == "mlflow":
        if _http_ok(f"{mlflow_url(cfg)}/health"):
            raise StackError(
                f"something not started by oscflow already answers at {mlflow_url(cfg)}; "
                "stop it or choose another port with mlflow.port=<port>"
            )
        env.update(webhook_env(cfg))
        info = processes.start(state, name, _mlflow_cmd(cfg), env, root)
        ready = lambda: _http_ok(f"{mlflow_url(cfg)}/health")
        timeout = float(cfg.mlflow.start_timeout_s)
    elif name == "intake":
        info = processes.start(state, name, _oscflow_cmd("intake", overrides), env, root)
        ready = lambda: _http_ok(f"{intake_url(cfg)}/healthz")
        timeout = 60.0
    else:
        info = processes.start(state, name, _oscflow_cmd("worker", overrides), env, root)
        pid = int(info["pid"])
        ready = lambda: _worker_alive(cfg, pid)
        timeout = 60.0
    pid = int(info["pid"])
    try:
        processes.wait_until(
            lambda: ready() or not processes.alive(pid), timeout, f"{name} (log {info['log']})"
        )
    except TimeoutError as exc:
        raise StackError(str(exc)) from None
    if not processes.alive(pid):
        tail = Path(info["log"]).read_text(errors="replace")[-1500:]
        processes.stop(state, name)
        raise StackError(f"{name} exited at start; its log ({info['log']}) ends:\n{tail}")
    return f"started (pid {pid})"


def register_webhook(cfg: DictConfig) -> dict[str, Any]:
    """Create, or update in place, the webhook named ``intake.webhook_name`` (idempotent)."""
    from mlflow.tracking import MlflowClient

    from ..events.intake import read_secret

    if not cfg.intake.secret:
        private_file(Path(str(cfg.intake.secret_file)), _new_secret)
    secret = read_secret(cfg)
    client = MlflowClient(str(cfg.tracking_uri))
    url = str(cfg.intake.public_url)
    name = str(cfg.intake.webhook_name)
    existing = [w for w in client.list_webhooks() if w.name == name]
    if existing:
        hook = client.update_webhook(
            existing[0].webhook_id, url=url, events=list(EVENTS), secret=secret, status="ACTIVE"
        )
        action = "updated"
    else:
        hook = client.create_webhook(name, url, events=list(EVENTS), secret=secret)
        action = "created"
    return {"webhook_id": hook.webhook_id, "url": url, "events": list(EVENTS), "action": action}


def _new_secret() -> str:
    from ..events.signing import new_secret

    return new_secret()


def up(cfg: DictConfig, overrides: Sequence[str]) -> dict[str, Any]:
    """Start what is not running, register the webhook, report where things are."""
    started = time.time()
    if not cfg.intake.secret:
        private_file(Path(str(cfg.intake.secret_file)), _new_secret)
    parts = {"mlflow": _start(cfg, "mlflow", overrides)}
    os.environ.setdefault("MLFLOW_TRACKING_URI", mlflow_url(cfg))
    parts["intake"] = _start(cfg, "intake", overrides)
    hook = register_webhook(cfg)
    parts["worker"] = _start(cfg, "worker", overrides)
    return {
        "components": parts,
        "webhook": hook,
        "ui": mlflow_url(cfg),
        "tracking_uri": mlflow_url(cfg),
        "export": f"export MLFLOW_TRACKING_URI={mlflow_url(cfg)}",
        "state_dir": str(_state_dir(cfg)),
        "seconds": round(time.time() - started, 1),
    }


def down(cfg: DictConfig) -> dict[str, Any]:
    """Stop what ``up`` started (worker first, the MLflow server last)."""
    state = _state_dir(cfg)
    return {"components": {n: processes.stop(state, n) for n in reversed(COMPONENTS)}}


def status(cfg: DictConfig) -> dict[str, Any]:
    """Each part's health, queue depth, recent events and jobs, failures."""
    from ..events.ledger import Ledger

    state = _state_dir(cfg)
    ledger = Ledger(str(cfg.ledger_url))
    parts: dict[str, Any] = {}
    for name in COMPONENTS:
        info = processes.read(state, name) or {}
        parts[name] = {"pid": info.get("pid"), "process": "alive" if info.get("alive") else "-"}
    parts["mlflow"]["healthy"] = _http_ok(f"{mlflow_url(cfg)}/health")
    parts["intake"]["healthy"] = _http_ok(f"{intake_url(cfg)}/healthz")
    workers = ledger.workers(3 * float(cfg.workers.heartbeat_s))
    parts["worker"]["healthy"] = bool(workers)
    parts["worker"]["live_workers"] = [w["worker_id"] for w in workers]
    try:
        from ..events.queue import make_huey

        huey = make_huey(cfg)
        depth: int | str = int(huey.pending_count()) + int(huey.scheduled_count())
    except Exception as exc:  # noqa: BLE001 — status reports, it does not fail
        depth = f"unavailable: {exc}"
    return {
        "healthy": all(p["healthy"] for p in parts.values()),
        "components": parts,
        "queue_depth": depth,
        "job_counts": ledger.counts(),
        "recent_events": ledger.recent_events(10),
        "recent_jobs": ledger.jobs(10),
        "failures": ledger.jobs(10, state="failed"),
        "ui": mlflow_url(cfg),
    }


def format_status(s: dict[str, Any]) -> str:
    lines = [f"oscflow stack: {'healthy' if s['healthy'] else 'NOT healthy'}   UI {s['ui']}"]
    for name, p in s["components"].items():
        lines.append(f"  {name:<7} {'ok' if p['healthy'] else 'DOWN':<5} pid {p['pid'] or '-'}")
    lines.append(f"  queue depth: {s['queue_depth']}   jobs: {s['job_counts'] or '-'}")
    for e in s["recent_events"][:5]:
        when = time.strftime("%H:%M:%S", time.localtime(e["received_at"]))
        alias = f" @{e['alias']}" if e["alias"] else ""
        lines.append(
            f"  event {when} {e['event']} {e['model']} v{e['version']}{alias} ({e['source']})"
        )
    for j in s["recent_jobs"][:8]:
        lines.append(
            f"  job   {j['service']:<12} {j['model']} v{j['version']:<4} {j['state']:<9} "
            f"attempts {j['attempts']} {j['run_id'] or ''}"
        )
    for j in s["failures"]:
        lines.append(f"  FAILED {j['service']} {j['model']} v{j['version']}: {j['error']}")
    return "\n".join(lines)
