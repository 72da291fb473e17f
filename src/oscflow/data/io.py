"""On-disk format: a directory of ``.npy`` arrays (memory-mappable) and a ``meta.json``.

Every dataset directory is written atomically: into a hidden sibling first, renamed into place
only when complete, so a crash or a bad input never leaves a partial dataset behind.

Builds of one dataset directory are serialised by an exclusive lock (``fcntl.flock`` on
``.<name>.lock`` beside it, held from before the work directory is looked at until after the
publishing rename): a second build of the same directory waits for the first (saying so once
on stderr, with the holder's pid), then starts from its own inputs; so the published directory
is always exactly one build's. Waiting rather than failing: two builds of one dataset are
usually a re-run or a DVC queue, and each finishes as it would have alone. The lock file is
removed by its holder (waiters re-check that the file they locked is still the lock), so no
lock files stay behind; a killed holder's lock is released by the kernel.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

META = "meta.json"

# Lock files this process holds (flock is per open file: a nested request in this process must
# not open the file again, it would wait for itself). Builds are single-threaded.
_HELD: set[Path] = set()


def lock_path(target: str | os.PathLike[str]) -> Path:
    """The lock file guarding builds of the dataset directory ``target``."""
    target = Path(target)
    return target.with_name(f".{target.name}.lock")


@contextlib.contextmanager
def build_lock(target: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the exclusive build lock of the dataset directory ``target`` (re-entrant within a
    process). Waits for another process's build of ``target``, telling stderr once who holds
    it; the holder's pid, command and start time are in the lock file."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    path = lock_path(target).absolute()
    if path in _HELD:
        yield
        return
    fd = _acquire(path, target)
    _HELD.add(path)
    try:
        yield
    finally:
        _HELD.discard(path)
        # Unlink while still holding the lock: a waiter that then gets the old file sees that
        # it is no longer the lock and retries on a fresh one.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


def _acquire(path: Path, target: Path) -> int:
    announced = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not announced:
                    holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
                    print(
                        f"oscflow: waiting for another build of {target} to finish "
                        f"(lock {path}, held by {holder or 'a process that is starting'})",
                        file=sys.stderr,
                        flush=True,
                    )
                    announced = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
                stamp = f"pid {os.getpid()} ({command}) since {time.ctime()}\n"
                os.ftruncate(fd, 0)
                os.pwrite(fd, stamp.encode(), 0)
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the previous holder removed this file: lock the current one


def _remove_leftovers(target: Path) -> None:
    """Work directories of killed builds of ``target`` (only safe under its build lock)."""
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    shutil.rmtree(target.with_name(f".{target.name}.old"), ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``target`` only if the block succeeds, all
    under ``target``'s build lock."""
    target = Path(target)
    with build_lock(target):
        _remove_leftovers(target)
        # A plain mkdir (not mkdtemp's 0700): the published directory gets the usual mode.
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        tmp.mkdir()
        try:
            yield tmp
            _move_into_place(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write JSON atomically (temporary file in the same directory, then rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_meta(directory: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(directory) / META
    if not path.is_file():
        msg = f"{directory} has no {META}: not an oscflow dataset (run `dvc repro` to build it)"
        raise FileNotFoundError(msg)
    return json.loads(path.read_text())


def load_array(directory: str | os.PathLike[str], name: str) -> NDArray[Any]:
    """Memory-map ``<directory>/<name>.npy`` read-only."""
    return np.load(Path(directory) / f"{name}.npy", mmap_mode="r")


# The packages whose code computes a dataset's arrays (the spectra stages' DVC deps).
COMPUTING_PACKAGES = ("physics", "experiments", "data")


def code_fingerprint(
    packages: tuple[str, ...] = COMPUTING_PACKAGES, root: str | os.PathLike[str] | None = None
) -> str:
    """SHA-256 of the oscflow sources in ``packages`` under ``root`` (default: this oscflow;
    path and bytes of every ``.py``): a resumed build must not mix chunks computed by different
    code (found when a build killed under one version of the exact model was resumed under the
    next: its training split mixed the two)."""
    import hashlib

    root = Path(root) if root is not None else Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@contextlib.contextmanager
def resumable_directory(
    target: str | os.PathLike[str], fingerprint: dict[str, Any]
) -> Iterator[Path]:
    """Like ``atomic_directory``, but the work directory survives a failure or an interrupt so
    that a rerun with the same ``fingerprint`` (the stage's inputs) resumes where it stopped;
    a different fingerprint starts afresh. ``target`` appears only when the block succeeds.

    The build lock is held from before the work directory is inspected until after it is
    published, so a concurrent build of ``target`` never shares it: after waiting, a build
    resumes only a work directory stamped with its own fingerprint."""
    target = Path(target)
    with build_lock(target):
        _remove_leftovers(target)
        work = target.with_name(f".{target.name}.partial")
        stamp = work / "fingerprint.json"
        if work.exists() and _stamp(stamp) != _canonical(fingerprint):
            shutil.rmtree(work)
        work.mkdir(exist_ok=True)
        if not stamp.is_file():
            write_json(stamp, fingerprint)
        yield work
        stamp.unlink()
        for leftover in work.glob("*.done.json"):
            leftover.unlink()
        _move_into_place(work, target)


def _canonical(data: Any) -> Any:
    """``data`` as it reads back from JSON (tuples become lists, keys strings)."""
    return json.loads(json.dumps(data, sort_keys=True))


def _stamp(path: Path) -> Any:
    """The fingerprint a work directory was started with, or None (missing or unreadable)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _move_into_place(src: Path, target: Path) -> None:
    """Rename ``src`` to ``target``, replacing an existing ``target`` directory (callers hold
    the build lock)."""
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        src.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        src.rename(target)
