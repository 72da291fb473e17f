"""Background processes with pid files: start (own session, log file), liveness, stop."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any


def pid_file(state_dir: Path, name: str) -> Path:
    return state_dir / "pids" / f"{name}.json"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            return False
    return True


def read(state_dir: Path, name: str) -> dict[str, Any] | None:
    path = pid_file(state_dir, name)
    if not path.is_file():
        return None
    info = json.loads(path.read_text())
    info["alive"] = alive(int(info["pid"]))
    return info


def start(
    state_dir: Path, name: str, cmd: Sequence[str], env: Mapping[str, str], cwd: Path
) -> dict[str, Any]:
    """Start ``cmd`` in its own session, output to ``state_dir/logs/<name>.log``; pid file."""
    logs = state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = (logs / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    info = {"pid": proc.pid, "cmd": list(cmd), "started": time.time(), "log": str(log.name)}
    path = pid_file(state_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, path)
    return info


def stop(state_dir: Path, name: str, timeout: float = 20.0) -> str:
    """SIGTERM the process group ``up`` started, SIGKILL after ``timeout``; remove the pid file."""
    info = read(state_dir, name)
    if info is None:
        return "not started by oscflow up"
    pid = int(info["pid"])
    result = "was not running"
    if info["alive"]:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.time() + timeout
        while alive(pid) and time.time() < deadline:
            time.sleep(0.1)
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            result = "killed (did not stop on SIGTERM)"
        else:
            result = "stopped"
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    pid_file(state_dir, name).unlink(missing_ok=True)
    return result


def wait_until(check: Callable[[], bool], timeout: float, what: str, poll: float = 0.25) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(poll)
    raise TimeoutError(f"{what} not ready after {timeout:g} s")
