"""The stand-in service, slow (8 s per job): long enough to SIGKILL a worker mid-job."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from standins import fast as standin_service

JOB = standin_service.JOB
promotion_overrides = standin_service.promotion_overrides


def record(cfg: DictConfig, tags: Mapping[str, str]) -> dict[str, Any]:
    return standin_service.record(cfg, tags, sleep=8.0)
