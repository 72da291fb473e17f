"""`oscflow spectra` on a real Dask cluster (issue 18): a ``dask scheduler`` and two
``dask worker`` processes on loopback build a tiny dataset that is byte-for-byte the in-process
build although a worker is killed while it holds chunks (Dask reschedules them on the other);
with both killed the build fails cleanly and a rerun resumes; an unreachable scheduler is
refused, naming the address, before anything is written."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from distributed import Client

from oscflow.cli import main
from oscflow.data import evaluate

REPO = Path(__file__).resolve().parents[1]
DATASET = Path("data/juno/demo")
TINY = [
    "data.simulate.n_pairs=20000",
    "data.simulate.chunk=10000",
    "data.spectra.splits.train=100",
    "data.spectra.splits.val=10",
    "data.spectra.splits.test=10",
    "data.spectra.chunk=5",  # 20 train chunks: a worker killed after the first is mid-build
    "binning.nbins=40",  # a cheap predictor: the test is about where chunks run
    "experiment.response_fine_bins=300",
]
STARTUP_S = 60.0


def _dask(*args: str, log: Path) -> subprocess.Popen[bytes]:
    """A ``dask`` CLI process of this interpreter's environment, importing this checkout."""
    path = [str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dask", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait(condition: Callable[[], bool], what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + STARTUP_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out: {what}\n" + "\n".join(p.read_text() for p in logs))
        time.sleep(0.02)


@dataclass
class Cluster:
    address: str
    procs: list[subprocess.Popen[bytes]]  # scheduler, worker a, worker b
    probe: Client  # the test's own client of the scheduler
    workers: dict[str, str] = field(default_factory=dict)  # name → address

    def busy(self, name: str) -> Callable[[], bool]:
        """Whether the worker called ``name`` holds chunks now."""
        if not self.workers:
            self.probe.wait_for_workers(2, timeout=STARTUP_S)
            info = self.probe.scheduler_info()["workers"]
            self.workers.update({w["name"]: a for a, w in info.items()})
        address = self.workers[name]
        return lambda: bool(self.probe.processing([address]).get(address))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A scheduler and two single-threaded workers, a and b (no nanny: killing the process kills
    the worker), starting while the test goes on."""
    info = tmp_path / "scheduler.json"
    logs = [tmp_path / f"{name}.log" for name in ("scheduler", "worker-a", "worker-b")]
    procs = [
        _dask(
            "scheduler",
            "--host=127.0.0.1",
            "--port=0",
            "--no-dashboard",
            f"--scheduler-file={info}",
            log=logs[0],
        )
    ]
    try:
        _wait(info.is_file, "the scheduler file", logs)
        address = json.loads(info.read_text())["address"]
        procs += [
            _dask(
                "worker",
                address,
                "--host=127.0.0.1",
                "--nthreads=1",
                f"--name={log.stem[-1]}",
                "--no-nanny",
                "--no-dashboard",
                f"--local-directory={tmp_path / 'dask'}",
                log=log,
            )
            for log in logs[1:]
        ]
        with Client(address, set_as_default=False, timeout=STARTUP_S) as probe:
            yield Cluster(address, procs, probe)
    finally:
        for proc in procs:  # nothing of theirs to keep
            proc.kill()
            proc.wait()


def _tree(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


@contextlib.contextmanager
def _killing(
    monkeypatch: pytest.MonkeyPatch, proc: subprocess.Popen[bytes], busy: Callable[[], bool]
) -> Iterator[list[int]]:
    """SIGKILL ``proc`` (and wait for its death) when the build records a chunk while ``busy()``
    says the worker holds chunks; yields the number of chunks recorded when it died."""
    killed: list[int] = []
    record = evaluate.write_json

    def kill_then_record(path: Path, chunks: list[int]) -> None:
        if not killed and busy():
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            killed.append(len(chunks))
        record(path, chunks)

    with monkeypatch.context() as patch:
        patch.setattr(evaluate, "write_json", kill_then_record)
        yield killed
    assert killed, "the worker was never busy at a recorded chunk"
    assert killed[0] < 20, "the worker was not killed mid-build"
    assert proc.returncode == -signal.SIGKILL


def test_dask_build_is_the_local_build_and_survives_killed_workers(
    tmp_path: Path,
    cluster: Cluster,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """(1) Worker a killed while it holds chunks: the build finishes on worker b, byte-for-byte
    the in-process build. (2) The same build, worker b killed too: no workers left, the build
    fails with a message saying how to resume, the published dataset untouched. (3) A rerun
    (in this process) evaluates only the chunks not recorded and publishes the same bytes."""
    monkeypatch.delenv(evaluate.SCHEDULER_ENV, raising=False)
    address, procs = cluster.address, cluster.procs
    root = [f"paths.root_dir={tmp_path}", *TINY]
    on_cluster = ["spectra", *root, f"data.spectra.scheduler={address}"]
    # While the cluster starts: the MC pairs and the in-process reference build.
    assert main(["simulate", *root]) == 0
    assert main(["spectra", *root, "data.spectra.workers=1"]) == 0
    reference = _tree(tmp_path / DATASET / "spectra")
    capsys.readouterr()

    with _killing(monkeypatch, procs[1], cluster.busy("a")):
        code = main(on_cluster)
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"Dask scheduler {address}" in err
    assert "spectra train: 100/100 (100 %)" in err  # the progress lines still advance
    assert procs[2].poll() is None  # the other worker finished the build
    assert _tree(tmp_path / DATASET / "spectra") == reference

    monkeypatch.setattr(evaluate, "NO_WORKERS_S", 0.2)
    monkeypatch.setattr(evaluate, "POLL_S", 0.05)
    with _killing(monkeypatch, procs[2], cluster.busy("b")):
        code = main(on_cluster)
    err = capsys.readouterr().err
    assert code == 1, err
    assert "the Dask cluster has had no workers for 0.2 s" in err
    assert "no dataset was published" in err
    assert "rerun the same command: it resumes from the recorded chunks" in err
    assert _tree(tmp_path / DATASET / "spectra") == reference
    done = tmp_path / DATASET / ".spectra.partial" / "train.done.json"
    recorded = len(json.loads(done.read_text()))
    assert 1 <= recorded < 20

    calls = []
    task = evaluate._task

    def counted(*args: Any) -> Any:
        calls.append(1)
        return task(*args)

    monkeypatch.setattr(evaluate, "_task", counted)
    assert main(["spectra", *root, "data.spectra.workers=1"]) == 0
    assert len(calls) == 20 - recorded + 2 + 2  # the rest of train, then val and test
    assert _tree(tmp_path / DATASET / "spectra") == reference
    assert sorted(p.name for p in (tmp_path / DATASET).iterdir()) == ["pairs", "spectra"]


@pytest.mark.parametrize("given_by", ["data.spectra.scheduler", "$DASK_SCHEDULER_ADDRESS"])
def test_unreachable_scheduler_is_refused_before_anything_is_written(
    given_by: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    monkeypatch.setattr(evaluate, "CONNECT_TIMEOUT_S", 0.5)
    args = ["spectra", f"paths.root_dir={tmp_path}"]
    if given_by.startswith("$"):
        monkeypatch.setenv(given_by[1:], address)
    else:
        monkeypatch.delenv(evaluate.SCHEDULER_ENV, raising=False)
        args.append(f"{given_by}={address}")
    code = main(args)
    err = capsys.readouterr().err
    assert code == 1, err
    assert f"{given_by}: no Dask scheduler reachable at {address}" in err
    assert "dask scheduler" in err
    assert "data.spectra.scheduler=null" in err
    assert list(tmp_path.iterdir()) == []
