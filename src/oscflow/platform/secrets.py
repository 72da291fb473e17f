"""Secrets ``oscflow up`` generates once and keeps in files only the user can read (0600)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def private_file(path: Path, make: Callable[[], str]) -> str:
    """The file's content; created atomically with mode 0600 from ``make()`` if missing."""
    if path.is_file():
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    value = make()
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    os.replace(tmp, path)
    return value


def fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()
