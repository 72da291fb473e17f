"""Sensitivity service: JUNO's reach for solar ν_e → ν̄_e conversion and the neutrino magnetic
moment (seed 003), reproduced from its inputs and extended.

Service contract (``oscflow.services``): ``JOB``, ``promotion_overrides``, ``record``. The
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

JOB = "sensitivity"


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
