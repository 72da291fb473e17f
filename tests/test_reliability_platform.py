"""Reliability of the platform (issue 20), with real processes and the real intake app:

- defect 3: `oscflow up` saves the stack's resolved settings (``.oscflow/stack.json``);
  `status`/`down` without overrides use them, and a second `up` (or any command) with settings
  that contradict the running stack is refused with each difference;
- defect 4: `down`/``processes.stop`` signal only a process whose pid still has the recorded
  kernel start time and command line; a reused pid is reported, never killed;
- defect 7: no validly signed body makes the intake answer a 5xx: every refusal is a 4xx with
  ``{"error": reason}`` (property-based, hypothesis, over the real Starlette app with a real
  SQLite queue and ledger).

The stack tests use stand-in processes (a small HTTP server answering 200 where the MLflow
server and the intake answer their health checks): a real `oscflow up` takes a minute here, and
`tests/test_platform.py` runs one end to end.

The fuzz tests are bounded (``OSCFLOW_FUZZ_EXAMPLES`` examples each, default 200: a few
seconds). A longer run, and the replay of one:

    OSCFLOW_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/test_reliability_platform.py \\
        -k fuzz -q
    .venv/bin/python -m pytest tests/test_reliability_platform.py -k fuzz --hypothesis-seed=1234

(a failing example is also kept in ``.hypothesis/`` and tried first on the next run).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from oscflow.cli import main
from oscflow.config import load
from oscflow.events import routing, signing
from oscflow.events.intake import UNEXPECTED, create_app
from oscflow.events.queue import Queue
from oscflow.platform import processes, stack

SECRET = "s3cret-for-fuzzing"
UNHEALTHY = 4  # exit status of `oscflow status` for a stack that is not healthy
ML_VIEW = "/#/experiments?workflowType=machine_learning"  # the UI link's model-training view
EXAMPLES = int(os.environ.get("OSCFLOW_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Answers 200 to every GET: a stand-in for MLflow's /health and the intake's /healthz.
STAND_IN = """
import http.server, sys
class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Ok).serve_forever()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _oscflow(*args: str) -> tuple[int, str, str]:
    """``oscflow ARGS`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def _serving(port: int) -> bool:
    return stack._http_ok(f"http://127.0.0.1:{port}/health", timeout=0.5)


def _wait_serving(port: int) -> None:
    processes.wait_until(lambda: _serving(port), 20, f"stand-in on port {port}", poll=0.05)


def _gone(proc: subprocess.Popen[bytes]) -> bool:
    return proc.poll() is not None


@pytest.fixture(autouse=True)
def _no_tracking_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("OSCFLOW_WEBHOOK_SECRET", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # no back-off against stand-ins


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process the test started itself (not by `up`), leading its own session like a daemon."""
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    deadline = time.monotonic() + 10  # Popen returns a moment before exec sets the cmdline
    while not (processes.identity(proc.pid) or {}).get("cmdline") and time.monotonic() < deadline:
        time.sleep(0.001)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


# -- defect 4: no signal to a pid that is now another process ---------------------------------


def _pid_file_for(proc: subprocess.Popen[bytes], variant: str) -> dict[str, Any]:
    """A pid file naming ``proc``'s pid but recording another process (a reused pid)."""
    mlflow_cmd = [sys.executable, "-m", "mlflow", "server", "--port", "5000"]
    ident = processes.identity(proc.pid)
    assert ident is not None
    if variant == "legacy":  # what today's `up` writes: pid, cmd, started
        return {"pid": proc.pid, "cmd": mlflow_cmd, "started": time.time() - 3600}
    info = {
        "pid": proc.pid,
        "cmd": mlflow_cmd,
        "started": time.time(),
        "starttime": ident["starttime"],
        "boot_id": ident["boot_id"],
        "cmdline": ident["cmdline"],
    }
    if variant == "other start time":
        info["starttime"] = ident["starttime"] - 1
    elif variant == "other command line":
        info["cmdline"] = mlflow_cmd
    return info


@pytest.mark.parametrize("variant", ["legacy", "other start time", "other command line"])
def test_down_does_not_signal_a_pid_that_is_now_another_process(
    variant: str, sleeper: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    path = processes.pid_file(state, "mlflow")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_pid_file_for(sleeper, variant)))
    info = processes.read(state, "mlflow")
    assert info is not None
    assert not info["alive"]  # not the process the file recorded: not running
    assert f"pid {sleeper.pid} is now another process (sleep 60" in info["other"]
    assert stack.running(state) == []
    code, out, err = _oscflow("down", f"state_dir={state}")
    assert code == 0, err
    assert f"pid {sleeper.pid} is now another process (sleep 60" in out
    assert "not signalled" in out
    assert sleeper.poll() is None  # still alive
    assert not path.exists()  # the stale pid file is gone
    assert processes.stop(state, "mlflow") == "not started by oscflow up"
    assert sleeper.poll() is None


def test_status_reports_a_reused_pid_as_not_running(
    sleeper: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    path = processes.pid_file(state, "worker")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_pid_file_for(sleeper, "other start time")))
    code, out, _ = _oscflow("status", "--json", f"state_dir={state}")
    assert code == UNHEALTHY
    worker = json.loads(out)["components"]["worker"]
    assert worker["process"].startswith(f"not running (pid {sleeper.pid} is now another process")
    assert sleeper.poll() is None


def test_stop_stops_the_process_start_started(tmp_path: Path) -> None:
    state = tmp_path / "state"
    cmd = [sys.executable, "-c", "import time; time.sleep(60)"]
    info = processes.start(state, "worker", cmd, {}, tmp_path)
    pid = int(info["pid"])
    recorded = json.loads(processes.pid_file(state, "worker").read_text())
    ident = processes.identity(pid)
    assert ident is not None
    assert recorded["starttime"] == ident["starttime"]  # /proc/<pid>/stat field 22
    assert recorded["cmdline"] == ident["cmdline"] == cmd
    assert recorded["boot_id"] == ident["boot_id"]
    read = processes.read(state, "worker")
    assert read is not None
    assert read["alive"]
    assert read["other"] is None
    assert processes.stop(state, "worker") == "stopped"
    assert not processes.alive(pid)
    assert not processes.pid_file(state, "worker").exists()


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "state"
    code = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    info = processes.start(state, "intake", [sys.executable, "-c", code], {}, tmp_path)
    log = Path(info["log"])
    processes.wait_until(lambda: b"ready" in log.read_bytes(), 20, "SIGTERM ignored", poll=0.05)
    assert processes.stop(state, "intake", timeout=0.5) == "killed (did not stop on SIGTERM)"
    assert not processes.alive(int(info["pid"]))


# -- defect 3: the stack's settings are remembered --------------------------------------------


@pytest.fixture
def stand_in_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """An MLflow server and an intake as `up` leaves them: processes started through
    ``processes.start`` (pid files), answering their health checks on their own ports, and the
    settings `up` saves for those overrides (plus ``request.param``, if given)."""
    state = tmp_path / "state"
    ports = {"mlflow": _free_port(), "intake": _free_port()}
    overrides = [
        f"state_dir={state}",
        f"mlflow.port={ports['mlflow']}",
        f"intake.port={ports['intake']}",
        "queue.name=oscflow-standin",
        *getattr(request, "param", []),
    ]
    cfg = load("platform", overrides)
    for name, port in ports.items():
        processes.start(state, name, [sys.executable, "-c", STAND_IN, str(port)], {}, tmp_path)
    for port in ports.values():
        _wait_serving(port)
    stack.save_settings(state, cfg, overrides)
    try:
        yield {"state": state, "ports": ports, "overrides": overrides}
    finally:
        for name in ports:
            processes.stop(state, name, timeout=5)


def test_up_saves_the_resolved_settings_without_secrets_in_clear(tmp_path: Path) -> None:
    """`up` saves before it starts anything: here it stops at once because something not
    started by oscflow answers on the MLflow port, and the settings are there all the same."""
    state = tmp_path / "state"
    port, intake = _free_port(), _free_port()
    foreign = subprocess.Popen([sys.executable, "-c", STAND_IN, str(port)], start_new_session=True)
    try:
        _wait_serving(port)
        code, _, err = _oscflow(
            "up",
            f"state_dir={state}",
            f"mlflow.port={port}",
            f"intake.port={intake}",
            f"mlflow.backend_store_uri=sqlite:///{tmp_path}/mlflow.db",
            "ledger_url=postgresql+psycopg2://oscflow:hunter2@127.0.0.1:5432/ledger",
        )
    finally:
        os.killpg(foreign.pid, signal.SIGKILL)
        foreign.wait(timeout=10)
    assert code == 1
    assert "something not started by oscflow already answers" in err
    saved_file = state / "stack.json"
    assert saved_file.stat().st_mode & 0o777 == 0o600
    text = saved_file.read_text()
    assert "hunter2" not in text
    settings_ = json.loads(text)["settings"]
    assert settings_["stack"] == "local"
    assert settings_["mlflow.port"] == port
    assert settings_["intake.port"] == intake
    assert settings_["intake.public_url"] == f"http://127.0.0.1:{intake}/webhooks/mlflow"
    assert settings_["mlflow.backend_store_uri"] == f"sqlite:///{tmp_path}/mlflow.db"
    assert settings_["ledger_url"] == "postgresql+psycopg2://oscflow:***@127.0.0.1:5432/ledger"
    assert settings_["queue.sqlite_path"] == str(state / "queue.db")
    assert not [p for p in state.iterdir() if p.name.startswith(".stack.json")]  # atomic
    # nothing runs: `status` without overrides still reports that stack (and it is down)
    code, out, _ = _oscflow("status", "--json", f"state_dir={state}")
    assert json.loads(out)["ui"] == f"http://127.0.0.1:{port}{ML_VIEW}"


def test_status_and_down_without_overrides_use_the_saved_settings(
    stand_in_stack: dict[str, Any],
) -> None:
    state, ports = stand_in_stack["state"], stand_in_stack["ports"]
    code, out, err = _oscflow("status", "--json", f"state_dir={state}")
    assert code == UNHEALTHY, err  # no worker: not healthy as a whole
    status = json.loads(out)
    assert status["ui"] == f"http://127.0.0.1:{ports['mlflow']}{ML_VIEW}"
    assert status["components"]["mlflow"]["healthy"]
    assert status["components"]["intake"]["healthy"]
    assert status["settings_file"] == str(state / "stack.json")
    # the same settings given explicitly are no conflict
    code, out, err = _oscflow("status", "--json", *stand_in_stack["overrides"])
    assert code == UNHEALTHY, err
    assert json.loads(out)["components"]["mlflow"]["healthy"]
    code, out, err = _oscflow("down", f"state_dir={state}")
    assert code == 0, err
    assert "mlflow  stopped" in out
    assert "intake  stopped" in out
    assert not _serving(ports["mlflow"])
    assert not _serving(ports["intake"])
    assert not (state / "stack.json").exists()  # a stack that is down has no settings to keep


def test_second_up_with_other_settings_is_refused_with_the_differences(
    stand_in_stack: dict[str, Any],
) -> None:
    state, ports = stand_in_stack["state"], stand_in_stack["ports"]
    saved = (state / "stack.json").read_bytes()
    other = _free_port()
    code, out, err = _oscflow("up", f"state_dir={state}", f"mlflow.port={other}")
    assert code == 1, out
    assert f"mlflow.port: running {ports['mlflow']} vs requested {other}" in err
    assert "oscflow down" in err
    assert "without these overrides" in err
    code, _, err = _oscflow("up", f"state_dir={state}", "stack=team")
    assert code == 1
    assert 'stack: running "local" vs requested "team"' in err
    assert 'queue.backend: running "sqlite" vs requested "redis"' in err
    code, _, err = _oscflow("register-webhook", f"state_dir={state}", f"intake.port={other}")
    assert code == 1
    assert f"intake.port: running {ports['intake']} vs requested {other}" in err
    # nothing was rewired: the same processes answer on the same ports, settings unchanged
    assert _serving(ports["mlflow"])
    assert _serving(ports["intake"])
    assert (state / "stack.json").read_bytes() == saved
    assert stack.running(state) == ["mlflow", "intake"]
    # once the stack no longer runs, `up` may start it with other settings
    for name in ports:
        processes.stop(state, name, timeout=5)
    requested = [f"state_dir={state}", f"mlflow.port={other}"]
    cfg, overrides = stack.resolve(load("platform", requested), requested, "up")
    assert cfg.mlflow.port == other
    assert overrides == requested


@pytest.mark.parametrize("stand_in_stack", [["intake.secret=stand-in-secret"]], indirect=True)
def test_secrets_given_to_up_are_not_saved_and_must_be_given_again(
    stand_in_stack: dict[str, Any],
) -> None:
    state, ports = stand_in_stack["state"], stand_in_stack["ports"]
    saved = json.loads((state / "stack.json").read_text())
    assert "stand-in-secret" not in json.dumps(saved)
    assert saved["masked"] == ["intake.secret"]
    code, _, err = _oscflow("status", f"state_dir={state}")
    assert code == 1
    assert "was started with a secret in intake.secret" in err
    assert "intake.secret=..." in err
    code, out, err = _oscflow("status", "--json", *stand_in_stack["overrides"])
    assert code == UNHEALTHY, err
    assert json.loads(out)["ui"] == f"http://127.0.0.1:{ports['mlflow']}{ML_VIEW}"


# -- the S3 store of stack=team: bad endpoint or credentials, what `down` stops ---------------

S3_KEY, S3_SECRET = "oscflow-s3-test", "s3-secret-for-the-tests"


@pytest.fixture
def s3_team(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """stack=team with its S3 endpoint on a free loopback port and the credentials in the
    environment, as a user sets them; MLflow's store, the ledger and the queue on SQLite files
    (`up` should stop before they matter; were it to start a stack, it would touch neither the
    machine's PostgreSQL nor Redis, and `down` stops it at the end)."""
    for name in ("OSCFLOW_ARTIFACTS_URI", "OSCFLOW_DVC_REMOTE_URL", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    url = f"http://127.0.0.1:{_free_port()}"
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    state = tmp_path / "state"
    overrides = [
        "stack=team",
        f"state_dir={state}",
        f"mlflow.port={_free_port()}",
        f"intake.port={_free_port()}",
        "queue.backend=sqlite",
        f"ledger_url=sqlite:///{state}/ledger.db",
        f"mlflow.backend_store_uri=sqlite:///{state}/mlflow.db",
    ]
    yield {"url": url, "state": state, "overrides": overrides}
    stack.down(OmegaConf.create({"state_dir": str(state)}))  # down reads the pid files only


def test_up_names_an_unreachable_s3_endpoint_and_the_fix(s3_team: dict[str, Any]) -> None:
    code, _, err = _oscflow("up", *s3_team["overrides"])
    assert code == 1
    assert f"the S3 endpoint {s3_team['url']} cannot be reached" in err
    assert "MLFLOW_S3_ENDPOINT_URL" in err
    assert "s3.serve=true" in err
    assert stack.running(s3_team["state"]) == []  # the check comes before any start


def test_up_refuses_wrong_s3_credentials_and_a_port_it_does_not_own(
    s3_team: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A local S3 server the test starts itself (not `up`): wrong credentials are refused at
    `up`, naming the endpoint and the variables to fix; right ones create the buckets; `up`
    with s3.serve=true will not start a second server on its port, and `down` leaves it be."""
    from oscflow.platform import s3

    port = s3_team["url"].rsplit(":", 1)[1]
    cmd = [sys.executable, "-m", "oscflow.platform.s3server", "--port", port]
    other = tmp_path / "other"  # its pid file is the test's, not the stack's
    server = processes.start(other, "s3", cmd, {}, tmp_path)
    try:
        processes.wait_until(lambda: stack._answers(s3_team["url"]), 30, "s3server")
        with monkeypatch.context() as mp:  # an unknown key: tests/test_s3server.py
            mp.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
            code, _, err = _oscflow("up", *s3_team["overrides"])
        assert code == 1
        assert f"the S3 endpoint {s3_team['url']} refused the credentials" in err
        assert "SignatureDoesNotMatch" in err
        assert "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in err
        assert stack.running(s3_team["state"]) == []
        cfg = load("platform", s3_team["overrides"])
        assert s3.ensure_buckets(cfg) == {"mlflow": "created", "dvc": "created"}
        assert s3.ensure_buckets(cfg) == {"mlflow": "exists", "dvc": "exists"}
        code, _, err = _oscflow("up", *s3_team["overrides"], "s3.serve=true")
        assert code == 1
        assert f"something not started by oscflow already answers at {s3_team['url']}" in err
        code, out, err = _oscflow("down", f"state_dir={s3_team['state']}")
        assert code == 0, err
        assert "s3      not started by oscflow up" in out
        assert processes.read(other, "s3")["alive"]
    finally:
        processes.stop(other, "s3", timeout=5)
    assert not processes.alive(int(server["pid"]))


def test_s3_serve_needs_a_loopback_endpoint(
    s3_team: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "http://minio:9000")
    code, _, err = _oscflow("up", *s3_team["overrides"], "s3.serve=true")
    assert code == 1
    assert (
        "s3.serve=true serves S3 on this machine, but s3.endpoint_url is http://minio:9000" in err
    )
    assert stack.running(s3_team["state"]) == []


def test_up_starts_the_local_s3_server_and_down_stops_only_it(s3_team: dict[str, Any]) -> None:
    """`up s3.serve=true` starts the S3 server and creates the buckets before the MLflow
    server, which here cannot start (something else answers on its port); `status` reports
    the S3 server; `down` stops it and leaves the other process alone."""
    mlflow_port = next(o for o in s3_team["overrides"] if o.startswith("mlflow.port="))
    foreign = subprocess.Popen(
        [sys.executable, "-c", STAND_IN, mlflow_port.split("=")[1]], start_new_session=True
    )
    overrides = [*s3_team["overrides"], "s3.serve=true"]
    try:
        _wait_serving(int(mlflow_port.split("=")[1]))
        code, _, err = _oscflow("up", *overrides)
        assert code == 1
        assert "something not started by oscflow already answers" in err
        assert stack.running(s3_team["state"]) == ["s3"]
        code, out, _ = _oscflow("status", "--json", *overrides)
        s3_part = json.loads(out)["components"]["s3"]
        assert s3_part["process"] == "alive"
        assert s3_part["healthy"]  # answers, accepts the credentials, has the buckets
        code, out, err = _oscflow("down", f"state_dir={s3_team['state']}")
        assert code == 0, err
        assert "s3      stopped" in out
        assert not stack._answers(s3_team["url"])
        assert foreign.poll() is None  # not ours: not signalled
    finally:
        os.killpg(foreign.pid, signal.SIGKILL)
        foreign.wait(timeout=10)


# -- defect 7: the intake never answers 5xx to a validly signed body --------------------------


@pytest.fixture(scope="module")
def intake_app(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The real intake app over a real Queue (Huey on SQLite) and ledger in a temporary dir."""
    state = tmp_path_factory.mktemp("fuzz_intake")
    cfg = load("platform", [f"state_dir={state}", f"intake.secret={SECRET}"])
    queue = Queue(cfg)
    return {"app": create_app(cfg, queue), "queue": queue, "path": str(cfg.intake.path)}


def _post(
    intake: dict[str, Any], body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """POST ``body`` through the ASGI app, signed unless ``headers`` are given (what uvicorn
    would hand it): the status and the response body; an exception escaping the app is a 500."""
    headers = signing.signed_headers(SECRET, body, uuid.uuid4().hex) if headers is None else headers
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    path = intake["path"]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 5055),
    }

    async def call() -> tuple[int, bytes]:
        sent = False
        started: dict[str, int] = {}
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started["status"] = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await intake["app"](scope, receive, send)
        except Exception:  # noqa: BLE001 — what a server turns into a 500
            return 500, b"".join(chunks)
        return started["status"], b"".join(chunks)

    return asyncio.run(call())


def _check(status: int, payload: bytes, body: bytes) -> dict[str, Any]:
    """Never a 5xx; a refusal is a 4xx with a JSON reason; an acceptance names a routed event."""
    assert status < 500, (status, payload, body[:200])
    answer = json.loads(payload)
    if status >= 300:
        assert 400 <= status < 500
        assert isinstance(answer, dict)
        assert isinstance(answer.get("error"), str)
        assert answer["error"]
        assert UNEXPECTED not in answer["error"], answer  # refused for a reason, not a crash
    else:
        assert status == 202
        assert answer["event"] in routing.ROUTED
        doc = json.loads(body)
        assert isinstance(doc["data"]["name"], str)
        assert str(doc["data"]["version"]).isdigit()
    return answer


def _event(data: Any, entity: str = "model_version_alias", **extra: Any) -> bytes:
    return json.dumps({"entity": entity, "action": "created", "data": data, **extra}).encode()


GOOD = {"name": "juno-spectrum", "version": "3", "alias": "champion"}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 30000 + b"]" * 30000, "nested too deeply"),
        (b"1" * 5000, "malformed JSON"),
        (b'{"entity": NaN}', "NaN is not JSON"),
        ('{"entity": "é"}'.encode("latin-1"), "not UTF-8"),
        (json.dumps({"entity": "x"}).encode("utf-16"), "not UTF-8"),
        (b"[1, 2]", "must be an object"),
        (b'"model_version.created"', "must be an object"),
        (_event({**GOOD, "name": {"nested": "object"}}), "data.name must be a string"),
        (_event({**GOOD, "name": 5}), "data.name must be a string"),
        (_event({**GOOD, "alias": ["champion"]}), "data.alias must be a string"),
        (_event({**GOOD, "alias": {"x": 1}}), "data.alias must be a string"),
        (_event({**GOOD, "alias": 7}), "data.alias must be a string"),
        (_event({**GOOD, "version": "three"}), "data.version must be a positive integer"),
        (_event({**GOOD, "version": [3]}), "data.version must be a positive integer"),
        (_event({**GOOD, "name": "x" * 300}), "longer than 256"),
        (_event({**GOOD, "name": "a\x00b"}), "control characters"),
        (_event({**GOOD, "name": "\ud800"}), "lone surrogate"),
        (_event(GOOD, timestamp={"at": 1}), "timestamp must be a string or a number"),
        (_event(GOOD, timestamp=1.5).replace(b"1.5", b"1e999"), "not a finite number"),
        (_event(GOOD, entity=["model_version_alias"]), "unknown event type"),
        (_event("not an object"), "must be an object"),
    ],
)
def test_intake_refuses_signed_bodies_it_cannot_parse_with_a_4xx(
    intake_app: dict[str, Any], body: bytes, reason: str
) -> None:
    status, payload = _post(intake_app, body)
    answer = _check(status, payload, body)
    assert status == 400, answer
    assert reason in answer["error"]


def test_intake_refuses_unusable_signed_headers_with_a_4xx(intake_app: dict[str, Any]) -> None:
    body = _event(GOOD)
    for delivery_id, ts in [
        ("x" * 300, str(int(time.time()))),
        ("with space", str(int(time.time()))),
        ("d-1", "9" * 400),
        ("d-2", "1e9"),
    ]:
        headers = signing.signed_headers(SECRET, body, delivery_id)
        headers[signing.TIMESTAMP] = ts
        headers[signing.SIGNATURE] = signing.sign(SECRET, delivery_id, ts, body)
        status, payload = _post(intake_app, body, headers)
        assert status == 401, payload
        _check(status, payload, body)


def test_intake_accepts_a_good_event_and_ints_as_versions(intake_app: dict[str, Any]) -> None:
    for data in (GOOD, {**GOOD, "version": 4}):
        body = _event(data)
        status, payload = _post(intake_app, body)
        assert status == 202, payload
        _check(status, payload, body)
    body = _event({"name": "juno-spectrum", "version": "5"}, entity="model_version")
    status, payload = _post(intake_app, body)
    assert status == 202, payload


# Random JSON values; strings with any code point, lone surrogates included.
ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=()), max_size=24)
SURROGATES = st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=3)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)
# A value for a known field: plausible, of another type, or odd text.
FIELD = st.one_of(
    st.sampled_from(["juno-spectrum", "champion", "1", "42", "", "0", "-1", "01", "x" * 300]),
    st.none() | st.booleans() | st.integers() | st.floats(),
    ANY_TEXT,
    ANY_TEXT.flatmap(lambda t: SURROGATES.map(lambda u: t + u)),
    st.lists(JSON_VALUES, max_size=3),
    st.dictionaries(ANY_TEXT, JSON_VALUES, max_size=3),
)
# MLflow's two event shapes with random types for the known fields.
KNOWN_EVENTS = st.fixed_dictionaries(
    {
        "entity": st.sampled_from(["model_version", "model_version_alias"]),
        "action": st.just("created"),
        "data": st.fixed_dictionaries(
            {"name": FIELD, "version": FIELD}, optional={"alias": FIELD, "run_id": FIELD}
        ),
    },
    optional={"timestamp": FIELD},
)
# Anything object-shaped.
EVENTS = st.fixed_dictionaries(
    {
        "entity": st.sampled_from(["model_version", "model_version_alias"]) | JSON_VALUES,
        "action": st.just("created") | JSON_VALUES,
        "data": st.dictionaries(st.sampled_from(["name", "version", "alias"]), FIELD) | JSON_VALUES,
    },
    optional={"timestamp": JSON_VALUES},
)


def _encoded(doc: Any, how: str) -> bytes:
    if how == "utf-8":
        return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return json.dumps(doc).encode(how)  # ASCII JSON: utf-16/utf-32 make it non-UTF-8


BODIES = st.one_of(
    st.binary(max_size=512),
    st.builds(_encoded, JSON_VALUES, st.sampled_from(["ascii", "utf-8"])),
    st.builds(_encoded, EVENTS, st.sampled_from(["ascii", "utf-8", "utf-16", "utf-32"])),
    st.builds(_encoded, KNOWN_EVENTS, st.sampled_from(["ascii", "ascii", "utf-8"])),
    st.builds(_encoded, KNOWN_EVENTS, st.just("ascii")),
)


@FUZZ
@given(body=BODIES)
def test_fuzz_signed_bodies_never_get_a_5xx(intake_app: dict[str, Any], body: bytes) -> None:
    status, payload = _post(intake_app, body)
    _check(status, payload, body)


HEADER_TEXT = st.text(
    alphabet=st.characters(max_codepoint=255, exclude_characters="\r\n\x00"), max_size=200
)


@FUZZ
@given(
    delivery_id=HEADER_TEXT | st.uuids().map(str),
    timestamp=HEADER_TEXT
    | st.integers(0, 10**400).map(str)  # digits only, up to 400 of them
    | st.integers(int(time.time()) - 400, int(time.time()) + 400).map(str),
)
def test_fuzz_signed_headers_never_get_a_5xx(
    intake_app: dict[str, Any], delivery_id: str, timestamp: str
) -> None:
    body = _event(GOOD)
    headers = {
        signing.DELIVERY_ID: delivery_id,
        signing.TIMESTAMP: timestamp,
        signing.SIGNATURE: signing.sign(SECRET, delivery_id, timestamp, body),
    }
    status, payload = _post(intake_app, body, headers)
    _check(status, payload, body)
