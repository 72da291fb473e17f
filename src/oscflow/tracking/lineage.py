"""Lineage facts recorded on runs and model versions: git commit, DVC md5s, config hash."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


def git_commit(root: str | os.PathLike[str]) -> str:
    """HEAD commit of the checkout at ``root`` (suffix ``-dirty`` if tracked files changed)."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def dvc_md5s(root: str | os.PathLike[str]) -> dict[str, str]:
    """Output path (relative to ``root``) → md5 from ``dvc.lock``; empty if there is none."""
    lock = Path(root) / "dvc.lock"
    if not lock.is_file():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    return {
        out["path"]: out["md5"]
        for stage in stages.values()
        for out in stage.get("outs", [])
        if "md5" in out
    }


def dataset_md5(root: str | os.PathLike[str], directory: str | os.PathLike[str]) -> str | None:
    """DVC md5 of a dataset directory, if ``dvc.lock`` records it."""
    root = Path(root).resolve()
    try:
        rel = str(Path(directory).resolve().relative_to(root))
    except ValueError:
        return None
    return dvc_md5s(root).get(rel)


def config_hash(cfg: Mapping[str, Any]) -> str:
    """Short sha256 of the canonical JSON of a (resolved) config."""
    blob = json.dumps(cfg, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# Config sections that say where things go or are logged, not what is computed.
VOLATILE = ("paths", "logger", "hydra", "output_dir")


def service_config_hash(cfg: Mapping[str, Any]) -> str:
    """Config hash of a service run (a resolved config without its ``VOLATILE`` sections):
    the event workers' idempotency key and the services' own tag agree by construction."""
    return config_hash({k: v for k, v in cfg.items() if k not in VOLATILE})


def flatten(cfg: Mapping[str, Any], prefix: str = "", max_len: int = 500) -> dict[str, str]:
    """Nested config → {"a.b.c": "value"} for MLflow params (long values truncated)."""
    out: dict[str, str] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}.", max_len))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for i, v in enumerate(value):
                out.update(flatten(v, f"{name}.{i}.", max_len))
        else:
            text = json.dumps(value) if isinstance(value, list) else str(value)
            out[name] = text if len(text) <= max_len else text[: max_len - 3] + "..."
    return out
