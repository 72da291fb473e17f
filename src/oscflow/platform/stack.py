"""``oscflow up|down|status|register-webhook``: the local stack on the embedded default
(or the team backends with ``stack=team``).

``up`` starts, in order and each only if not already running: the local S3 server if
``s3.serve=true``; then, when artifacts or the DVC remote are on S3, checks the endpoint and the
credentials and creates missing buckets (``s3.py``); the MLflow server (with the webhook
environment MLflow needs: a Fernet key to encrypt webhook secrets, http allowed, private
addresses allowed for a loopback receiver; and the S3 endpoint), the intake, the worker; then
registers (or updates) the webhook with the secret kept in ``state_dir/webhook_secret`` (mode
0600).

The stack's resolved settings (ports, hosts, backend URIs with passwords masked, stack kind)
and the overrides ``up`` was given are saved in ``state_dir/stack.json`` (atomically, mode
0600). While any part of the stack runs, ``up``, ``status``, ``down`` and the commands that
talk to the stack use those settings (a command's own overrides on top), and refuse overrides
that would change them: one stack, one set of settings, until ``oscflow down``."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from ..data.io import write_json
from ..errors import OscflowError
from ..tracking.ui import ui_link
from . import processes, s3
from .secrets import fernet_key, private_file

if TYPE_CHECKING:
    from mlflow.entities.webhook import WebhookEventStr

COMPONENTS = ("s3", "mlflow", "intake", "worker")
EVENTS: tuple[WebhookEventStr, ...] = ("model_version.created", "model_version_alias.created")
STACK_FILE = "stack.json"
DEFAULT_KIND = "local"  # conf/platform.yaml's default `stack`
# The settings that make a stack what it is: saved by `up`, compared on every later command.
SETTING_KEYS = (
    "mlflow.host",
    "mlflow.port",
    "mlflow.workers",
    "mlflow.backend_store_uri",
    "mlflow.artifacts_destination",
    "mlflow.app_name",
    "s3.endpoint_url",
    "s3.serve",
    "s3.dvc_remote",
    "intake.host",
    "intake.port",
    "intake.path",
    "intake.public_url",
    "intake.webhook_name",
    "queue.backend",
    "queue.name",
    "ledger_url",
)


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


def _answers(url: str, timeout: float = 2.0) -> bool:
    """Whether an HTTP server answers at ``url``, whatever its status (S3 refuses anonymous
    requests with 403)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def mlflow_url(cfg: DictConfig) -> str:
    return f"http://{cfg.mlflow.host}:{cfg.mlflow.port}"


def training_ui(cfg: DictConfig) -> str | None:
    """The UI link of the training runs (``logger.experiment_name``, e.g. juno-surrogate) on
    the stack's server, if that experiment exists and the server answers within 2 s (the
    experiments list alone is not enough: MLflow 3.17 opens an experiment clicked there on
    its GenAI overview unless the browser stored the model-training choice)."""
    name = cfg.get("logger", {}).get("experiment_name")
    if not name:
        return None
    query = urllib.parse.urlencode({"experiment_name": str(name)})
    url = f"{mlflow_url(cfg)}/api/2.0/mlflow/experiments/get-by-name?{query}"
    try:
        with urllib.request.urlopen(url, timeout=2.0) as resp:
            experiment_id = json.load(resp)["experiment"]["experiment_id"]
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError):
        return None
    return ui_link(mlflow_url(cfg), experiment_id=str(experiment_id))


def intake_url(cfg: DictConfig) -> str:
    return f"http://{cfg.intake.host}:{cfg.intake.port}"


def server_env(cfg: DictConfig) -> dict[str, str]:
    """The MLflow server's environment: what it needs to deliver signed webhooks to a loopback
    receiver (webhooks go out from its own thread pool, mlflow/webhooks/delivery.py), and its
    job runner off: oscflow's queue runs the platform's jobs, and MLflow 3's runner (GenAI
    scorers, trace roll-ups; a runner and two Huey consumers polling beside every server)
    has nothing to do here."""
    key = os.environ.get("MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY") or private_file(
        _state_dir(cfg) / "fernet_key", fernet_key
    )
    return {
        "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": key,
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
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


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def merge_overrides(base: Sequence[str], top: Sequence[str]) -> list[str]:
    """``base`` then ``top``, where an override in ``top`` replaces ``base``'s for its key."""
    keys = {_override_key(o) for o in top}
    return [o for o in base if _override_key(o) not in keys] + list(top)


def stack_kind(overrides: Sequence[str]) -> str:
    """The ``stack`` config group the overrides select (``local`` unless ``stack=...``)."""
    kind = DEFAULT_KIND
    for o in overrides:
        if _override_key(o) == "stack" and "=" in o:
            kind = o.split("=", 1)[1]
    return kind


def _mask(uri: str) -> str:
    """``uri`` with its password, if any, replaced by ``***`` (what stack.json may hold)."""
    try:
        parts = urllib.parse.urlsplit(uri)
        password = parts.password
    except ValueError:
        return uri
    if password is None:
        return uri
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


SECRET_SUFFIXES = ("secret", "password", "token")
MASK = "***"


def mask_override(override: str) -> str:
    """``override`` as stack.json may keep it: the value of a ``*secret``/``*password``/
    ``*token`` key, or a URI's password, replaced by ``***``."""
    key, sep, value = override.partition("=")
    if not sep:
        return override
    if _override_key(override).rsplit(".", 1)[-1].lower().endswith(SECRET_SUFFIXES):
        return f"{key}={MASK}"
    bare = value.strip("'\"")
    masked = _mask(bare)
    return override if masked == bare else f"{key}={masked}"


def stack_settings(cfg: DictConfig, overrides: Sequence[str]) -> dict[str, Any]:
    """The resolved settings of the stack ``cfg`` describes (paths absolute, passwords masked)."""
    out: dict[str, Any] = {"stack": stack_kind(overrides)}
    for key in SETTING_KEYS:
        out[key] = OmegaConf.select(cfg, key)
    for key in ("mlflow.backend_store_uri", "mlflow.artifacts_destination", "ledger_url"):
        out[key] = _mask(_local_path(str(out[key])))
    if str(cfg.queue.backend) == "sqlite":
        out["queue.sqlite_path"] = str(Path(str(cfg.queue.sqlite_path)).resolve())
    else:
        out["queue.redis_url"] = _mask(str(cfg.queue.redis_url))
    return out


def read_saved(state_dir: Path, tolerant: bool = False) -> dict[str, Any] | None:
    """What ``up`` saved in ``state_dir/stack.json`` ({"settings", "overrides", ...}), or None."""
    path = state_dir / STACK_FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
        problem = (
            None
            if isinstance(doc, dict)
            and isinstance(doc.get("settings"), dict)
            and isinstance(doc.get("overrides"), list)
            else "no settings and overrides in it"
        )
    except (OSError, ValueError) as exc:
        problem = str(exc)
    if problem is None:
        return doc
    if tolerant:
        return None
    raise StackError(
        f"cannot read the stack's saved settings {path} ({problem}); "
        "fix: `oscflow down` (stops the stack and forgets them), or remove the file"
    )


def save_settings(state_dir: Path, cfg: DictConfig, overrides: Sequence[str]) -> dict[str, Any]:
    """Write ``state_dir/stack.json`` atomically (temporary file, then rename; mode 0600)."""
    kept = [mask_override(o) for o in overrides]
    doc = {
        "settings": stack_settings(cfg, overrides),
        "overrides": kept,
        # keys whose values are not kept: a later command must give them again
        "masked": sorted(
            {_override_key(o) for o, k in zip(overrides, kept, strict=True) if o != k}
        ),
        "saved_at": time.time(),
    }
    write_json(state_dir / STACK_FILE, doc)  # atomic; mkstemp's mode 0600
    return doc


def running(state_dir: Path) -> list[str]:
    """The parts of the stack in ``state_dir`` whose recorded process still runs."""
    return [n for n in COMPONENTS if (processes.read(state_dir, n) or {}).get("alive")]


def differences(saved: Mapping[str, Any], requested: Mapping[str, Any]) -> list[str]:
    """``key: running X vs requested Y`` for every setting that differs."""
    order = ("stack", *SETTING_KEYS)
    keys = sorted({*saved, *requested}, key=lambda k: (order.index(k) if k in order else 99, k))
    return [
        f"{k}: running {json.dumps(saved.get(k))} vs requested {json.dumps(requested.get(k))}"
        for k in keys
        if saved.get(k) != requested.get(k)
    ]


def resolve(
    cfg: DictConfig, overrides: Sequence[str], command: str = "status"
) -> tuple[DictConfig, list[str]]:
    """The config and overrides of the stack in ``cfg``'s state dir: the settings ``up`` saved
    with ``overrides`` on top. While the stack runs, overrides that change its settings are
    refused (StackError listing each difference). ``up`` on a stack that no longer runs starts
    from ``overrides`` alone: a stopped stack's settings are not kept."""
    state = _state_dir(cfg)
    saved = read_saved(state)
    if saved is None:
        return cfg, list(overrides)
    live = running(state)
    if command == "up" and not live:
        return cfg, list(overrides)
    given = {_override_key(o) for o in overrides}
    missing = [k for k in saved.get("masked", []) if k not in given]
    if missing and live:
        raise StackError(
            f"the stack in {state} was started with a secret in {', '.join(missing)}, which "
            f"oscflow does not keep in {STACK_FILE}; fix: give "
            f"{' '.join(k + '=...' for k in missing)} to `oscflow {command}` again (or pass "
            "credentials through the environment, e.g. OSCFLOW_LEDGER_URL, as stack=team does)"
        )
    kept = [str(o) for o in saved["overrides"] if _override_key(str(o)) not in missing]
    merged = merge_overrides(kept, overrides)
    if merged != list(overrides):
        from ..config import load

        cfg = load("platform", merged)
    if live:
        diffs = differences(saved["settings"], stack_settings(cfg, merged))
        if diffs:
            listed = "\n  ".join(diffs)
            raise StackError(
                f"the stack in {state} is running ({', '.join(live)}) with other settings:\n"
                f"  {listed}\n"
                f"Fix: stop it first (`oscflow down`), or run `oscflow {command}` without these "
                "overrides (it then uses the running stack's settings, saved in "
                f"{state / STACK_FILE})"
            )
    return cfg, merged


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
    if name == "s3":
        url = str(s3.endpoint(cfg))
        cmd = s3.server_cmd(cfg)  # refuses an endpoint that is not on loopback
        if _answers(url):
            raise StackError(
                f"something not started by oscflow already answers at {url}; stop it, use it "
                "with s3.serve=false, or choose another port in MLFLOW_S3_ENDPOINT_URL"
            )
        info = processes.start(state, name, cmd, env, root)
        ready = lambda: _answers(url)
        timeout = 60.0
    elif name == "mlflow":
        if _http_ok(f"{mlflow_url(cfg)}/health"):
            raise StackError(
                f"something not started by oscflow already answers at {mlflow_url(cfg)}; "
                "stop it or choose another port with mlflow.port=<port>"
            )
        env.update(server_env(cfg))
        env.update(s3.server_env(cfg))
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


def up(cfg: DictConfig, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Start what is not running, register the webhook, report where things are.

    The settings are saved first (``stack.json``), so that a part which fails to start still
    leaves the stack's settings for ``status``/``down``; a running stack is never rewired
    (``resolve`` refuses conflicting overrides)."""
    started = time.time()
    cfg, overrides = resolve(cfg, overrides, "up")
    save_settings(_state_dir(cfg), cfg, overrides)
    if not cfg.intake.secret:
        private_file(Path(str(cfg.intake.secret_file)), _new_secret)
    parts: dict[str, str] = {}
    store: dict[str, Any] | None = None
    if s3.serves(cfg):
        parts["s3"] = _start(cfg, "s3", overrides)
    if s3.uses_s3(cfg):
        store = {
            "endpoint": s3.endpoint(cfg),
            "buckets": s3.ensure_buckets(cfg),
            "dvc_remote": s3.dvc_remote(cfg),
        }
    parts["mlflow"] = _start(cfg, "mlflow", overrides)
    os.environ.setdefault("MLFLOW_TRACKING_URI", mlflow_url(cfg))
    parts["intake"] = _start(cfg, "intake", overrides)
    hook = register_webhook(cfg)
    parts["worker"] = _start(cfg, "worker", overrides)
    return {
        "components": parts,
        "s3": store,
        "webhook": hook,
        "ui": ui_link(mlflow_url(cfg)),
        "training_ui": training_ui(cfg),
        "tracking_uri": mlflow_url(cfg),
        "export": f"export MLFLOW_TRACKING_URI={mlflow_url(cfg)}",
        "state_dir": str(_state_dir(cfg)),
        "seconds": round(time.time() - started, 1),
    }


def down(cfg: DictConfig) -> dict[str, Any]:
    """Stop what ``up`` started (worker first, then the MLflow server, the local S3 server
    last), only processes whose pid still has the recorded start time and command line (an S3
    server ``up`` did not start is never one of them); then forget the saved settings.
    Of the config only ``state_dir`` matters: the pid files say what to stop."""
    state = _state_dir(cfg)
    saved = read_saved(state, tolerant=True)
    parts = {n: processes.stop(state, n) for n in reversed(COMPONENTS)}
    (state / STACK_FILE).unlink(missing_ok=True)
    return {"components": parts, "settings": saved["settings"] if saved else None}


def status(cfg: DictConfig, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Each part's health, queue depth, recent events and jobs, failures — of the stack as
    ``up`` saved it (``overrides`` on top, refused if they contradict a running stack)."""
    from ..events.ledger import Ledger

    cfg, overrides = resolve(cfg, overrides, "status")
    state = _state_dir(cfg)
    saved = read_saved(state)
    ledger = Ledger(str(cfg.ledger_url))
    parts: dict[str, Any] = {}
    for name in COMPONENTS:
        info = processes.read(state, name) or {}
        parts[name] = {"pid": info.get("pid"), "process": "alive" if info.get("alive") else "-"}
        if info.get("other"):
            parts[name]["process"] = f"not running ({info['other']})"
    if s3.uses_s3(cfg):
        parts["s3"]["healthy"] = s3.healthy(cfg)
        if not s3.serves(cfg):
            parts["s3"]["process"] = f"external ({s3.endpoint(cfg) or 'AWS'})"
    else:
        del parts["s3"]
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
        "ui": ui_link(mlflow_url(cfg)),
        "training_ui": training_ui(cfg) if parts["mlflow"]["healthy"] else None,
        "stack": stack_kind(overrides),
        "settings_file": str(state / STACK_FILE) if saved else None,
    }


def format_s3(store: Mapping[str, Any] | None) -> str:
    """The lines of ``up``'s report on the S3 store: endpoint, buckets, the DVC remote."""
    if not store:
        return ""
    buckets = ", ".join(f"{b} ({state})" for b, state in store["buckets"].items())
    lines = [f"  s3 store {store['endpoint'] or 'AWS'}: buckets {buckets}"]
    remote = store.get("dvc_remote")
    if remote:
        lines.append(
            f"  DVC remote {remote['url']}, in a repository: " + " && ".join(remote["commands"])
        )
    return "\n".join(lines) + "\n"


def format_status(s: dict[str, Any]) -> str:
    lines = [f"oscflow stack: {'healthy' if s['healthy'] else 'NOT healthy'}   UI {s['ui']}"]
    if s.get("training_ui"):
        lines.append(f"  training runs: {s['training_ui']}")
    lines.append(
        f"  stack={s.get('stack', DEFAULT_KIND)}, settings: {s.get('settings_file') or '-'}"
    )
    for name, p in s["components"].items():
        note = f"   {p['process']}" if p["process"].startswith(("not running", "external")) else ""
        lines.append(
            f"  {name:<7} {'ok' if p['healthy'] else 'DOWN':<5} pid {p['pid'] or '-'}{note}"
        )
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
