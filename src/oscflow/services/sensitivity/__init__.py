"""Sensitivity service: JUNO's reach for solar ν_e → ν̄_e conversion and the neutrino magnetic
moment (seed 003), reproduced from its inputs and extended.

Service contract (``oscflow.services``): ``JOB``, ``promotion_overrides``, ``record``,
``ROUTES`` (on ``champion``), ``COMMAND`` (``oscflow sensitivity solar``). The
computation is ``run(cfg)`` (no MLflow); ``record`` wraps it in an MLflow run.

Modules, one concern each: ``inputs`` (validated settings), ``backgrounds`` (counts per
window: paper tables or a model), ``counting`` (limits, flux, P, μ_ν, uncertainties, Table 4),
``spectral`` (binned profile-likelihood limit), ``scans`` (exposure, threshold), ``plots``
(Figure-1-style PNG), ``service`` (the whole analysis as JSON), ``recording`` (the MLflow
run; not named ``record``, which would shadow the contract function once imported).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from .. import Command, Routes

JOB = "sensitivity"
ROUTES = Routes(on_alias=("champion",))


def promotion_overrides(model_uri: str) -> list[str]:
    """A promoted surrogate provides the reactor backgrounds. It predicts prompt energy in
    0.8–8.8 MeV only, so the run uses seed 003's windows mapped to prompt energy and clipped
    there (``conf/sensitivity/windows/surrogate_prompt.yaml``); the rest is the default."""
    return [
        f"model_uri={model_uri}",
        "background.source=model",
        "background.predictor=surrogate",
        "sensitivity/windows@windows=surrogate_prompt",
    ]


def run(cfg: DictConfig) -> dict[str, Any]:
    """The analysis of ``cfg`` as a JSON-ready dict (no MLflow)."""
    from .service import run as _run

    return _run(cfg)


def record(cfg: DictConfig, tags: Mapping[str, str]) -> dict[str, Any]:
    """Run the analysis and record it as one MLflow run carrying ``tags``."""
    from .recording import record as _record

    return _record(cfg, tags)


def _argv(words: list[str], overrides: list[str]) -> list[str]:
    """``oscflow sensitivity <analysis> [key=value ...]``: the word is ``analysis``."""
    if len(words) != 1:
        from ...errors import UsageError

        raise UsageError(
            "usage: oscflow sensitivity solar [key=value ...] [--json]. Fix: name one analysis "
            "(solar)"
        )
    return [f"analysis={words[0]}", *overrides]


def _cli(cfg: DictConfig) -> dict[str, Any]:
    return record(cfg, {}) if cfg.record else run(cfg)


def _human(result: dict[str, Any]) -> str:
    from .service import summary_table

    return summary_table(result)


COMMAND = Command(
    summary="solar ν_e → ν̄_e / magnetic-moment sensitivity (seed 003): "
    "background.source=paper|model limit.method=fc|gauss|auto",
    run=_cli,
    human=_human,
    argv=_argv,
    usage="solar",
)
