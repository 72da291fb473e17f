"""On-disk format: a directory of ``.npy`` arrays (memory-mappable) and a ``meta.json``.

Every dataset directory is written atomically: into a hidden sibling first, renamed into place
only when complete, so a crash or a bad input never leaves a partial dataset behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

META = "meta.json"


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``target`` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
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


@contextlib.contextmanager
def resumable_directory(
    target: str | os.PathLike[str], fingerprint: dict[str, Any]
) -> Iterator[Path]:
    """Like ``atomic_directory``, but the work directory survives a failure or an interrupt so
    that a rerun with the same ``fingerprint`` (the stage's inputs) resumes where it stopped;
    a different fingerprint starts afresh. ``target`` appears only when the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.with_name(f".{target.name}.partial")
    stamp = work / "fingerprint.json"
    if work.exists() and (not stamp.is_file() or json.loads(stamp.read_text()) != fingerprint):
        shutil.rmtree(work)
    work.mkdir(exist_ok=True)
    if not stamp.is_file():
        write_json(stamp, fingerprint)
    yield work
    stamp.unlink()
    for leftover in work.glob("*.done.json"):
        leftover.unlink()
    _move_into_place(work, target)


def _move_into_place(src: Path, target: Path) -> None:
    """Rename ``src`` to ``target``, replacing an existing ``target`` directory."""
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        src.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        src.rename(target)
