"""Background processes with pid files: start (own session, log file), liveness, stop.

A pid file records the process as the kernel saw it at start: its start time
(``/proc/<pid>/stat`` field 22, clock ticks since boot), the boot id and its command line
(``/proc/<pid>/cmdline``). A pid is trusted only while the live process with that pid still
matches all three: pids are reused, and ``down`` must never signal a process ``up`` did not
start."""

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

PROC = Path("/proc")
# Children this process started, kept so that they are reaped by ``stop`` (not left to
# ``Popen.__del__``, which warns about a child still running).
_children: dict[int, subprocess.Popen[bytes]] = {}


def pid_file(state_dir: Path, name: str) -> Path:
    return state_dir / "pids" / f"{name}.json"


def _boot_id() -> str | None:
    with contextlib.suppress(OSError):
        return (PROC / "sys/kernel/random/boot_id").read_text().strip()
    return None


def identity(pid: int) -> dict[str, Any] | None:
    """How the kernel identifies process ``pid`` now: ``{"starttime", "boot_id", "cmdline",
    "state"}``; None if there is no such process or /proc cannot tell (not Linux, not ours
    to read)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # fields[0] is field 3 (state) of proc(5)
    return {
        "starttime": int(fields[19]),  # field 22
        "boot_id": _boot_id(),
        "cmdline": [os.fsdecode(a) for a in raw.split(b"\0")[:-1]] if raw else [],
        "state": fields[0],
    }


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def alive(pid: int, recorded: Mapping[str, Any] | None = None) -> bool:
    """Whether process ``pid`` runs (zombies do not). With ``recorded`` (a pid file's content),
    only if it is still the process that file recorded (see ``other_process``)."""
    if recorded is not None:
        return _exists(pid) and not _zombie(pid) and other_process(recorded) is None
    return _exists(pid) and not _zombie(pid)


def _zombie(pid: int) -> bool:
    ident = identity(pid)
    return ident is not None and ident["state"] in ("Z", "X")


def other_process(info: Mapping[str, Any]) -> str | None:
    """None if pid ``info["pid"]`` is still the process ``info`` recorded (or is gone); else a
    description of the process that now has that pid."""
    pid = int(info["pid"])
    if not PROC.joinpath("self/stat").exists():  # no /proc (not Linux): cannot tell
        return None
    if not _exists(pid):
        return None
    now = identity(pid)
    if now is None:  # gone meanwhile, or its /proc entry is unreadable: not one of ours
        return f"pid {pid} is now a process this user cannot inspect" if _exists(pid) else None
    if now["state"] in ("Z", "X"):
        return None
    expected_cmdline = list(info.get("cmdline") or info.get("cmd") or [])
    if "starttime" in info:
        same = now["starttime"] == int(info["starttime"])
        if info.get("boot_id") and now["boot_id"]:
            same = same and now["boot_id"] == info["boot_id"]
        # an exiting process has no command line any more; its start time still says who it is
        if now["cmdline"]:
            same = same and now["cmdline"] == expected_cmdline
    else:  # a pid file from before start times were recorded: the command line must match
        same = now["cmdline"] == expected_cmdline
    if same:
        return None
    shown = " ".join(now["cmdline"])[:120] or "no command line"
    return f"pid {pid} is now another process ({shown}, started at tick {now['starttime']})"


def read(state_dir: Path, name: str) -> dict[str, Any] | None:
    """The pid file of ``name`` with ``alive`` (the recorded process runs) and ``other`` (the
    pid now belongs to another process: not ours, not running) added; None without a file."""
    path = pid_file(state_dir, name)
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return {"pid": None, "alive": False, "other": f"unreadable pid file {path}"}
    info["other"] = other_process(info)
    info["alive"] = info["other"] is None and alive(pid)
    return info


def start(
    state_dir: Path, name: str, cmd: Sequence[str], env: Mapping[str, str], cwd: Path
) -> dict[str, Any]:
    """Start ``cmd`` in its own session, output to ``state_dir/logs/<name>.log``; pid file
    (written atomically) with the process's kernel identity."""
    logs = state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = (logs / f"{name}.log").open("ab")
    with log:
        proc = subprocess.Popen(  # returns once the child has exec'd (or failed to)
            list(cmd),
            cwd=cwd,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _children[proc.pid] = proc
    ident = _after_exec(proc)
    info: dict[str, Any] = {
        "pid": proc.pid,
        "cmd": list(cmd),
        "started": time.time(),
        "log": str(log.name),
    }
    if ident is not None:
        info.update(starttime=ident["starttime"], boot_id=ident["boot_id"])
        info["cmdline"] = ident["cmdline"] or list(cmd)
    path = pid_file(state_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, path)
    return info


def _after_exec(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> dict[str, Any] | None:
    """The child's identity once the kernel shows its new command line: Popen returns when
    exec has passed its point of no return, a moment before ``/proc/<pid>/cmdline`` is set."""
    deadline = time.monotonic() + timeout
    while True:
        ident = identity(proc.pid)
        if ident is None or ident["cmdline"] or proc.poll() is not None:
            return ident
        if time.monotonic() > deadline:
            return ident
        time.sleep(0.001)


def stop(state_dir: Path, name: str, timeout: float = 20.0) -> str:
    """SIGTERM the process group ``up`` started, SIGKILL after ``timeout``; remove the pid file.

    Nothing is signalled unless the live process with the recorded pid has the recorded start
    time and command line: a pid now used by another process is reported, and its stale pid
    file removed."""
    info = read(state_dir, name)
    if info is None:
        return "not started by oscflow up"
    if info["other"]:
        pid_file(state_dir, name).unlink(missing_ok=True)
        return f"{info['other']}: not signalled"
    pid = int(info["pid"])
    result = "was not running"
    if info["alive"]:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.time() + timeout
        while alive(pid, info) and time.time() < deadline:
            time.sleep(0.05)
        if alive(pid, info):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            result = "killed (did not stop on SIGTERM)"
            deadline = time.time() + 5.0
            while alive(pid, info) and time.time() < deadline:
                time.sleep(0.02)
        else:
            result = "stopped"
        child = _children.pop(pid, None)
        if child is not None and child.poll() is None:  # ours to reap
            _children[pid] = child
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
