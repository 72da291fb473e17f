"""The fit service: measure oscillation parameters from a binned spectrum with iminuit, using a
registered surrogate (or the exact model, which also referees the surrogate).

Service contract (``oscflow.services``): ``JOB``, ``promotion_overrides``, ``record``. Modules:
``predictors`` (surrogate / exact reactor spectra), ``model`` (parameters, expectation, pulls),
``observation`` (Asimov, toys, files), ``minimize`` (MIGRAD/HESSE/MINOS, validity), ``scans``,
``toys``, ``run`` (orchestration, referee, mass ordering), ``recording`` (MLflow), ``api`` (the
command line's and Python's entry points), ``plots``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from .api import fit
from .minimize import FitNotConverged

JOB = "fit"


def record(cfg: DictConfig, tags: Mapping[str, str]) -> dict[str, Any]:
    """Run the fit of ``cfg`` and record one MLflow run with ``tags`` (see ``recording.py``)."""
    from .recording import record as _record

    return _record(cfg, tags)


def promotion_overrides(model_uri: str) -> list[str]:
    """A promoted version's fit: the surrogate beside the exact model (referee) on the
    experiment's default observation and orderings (conf/fit.yaml, conf/fit/experiment/): for
    JUNO Asimov data at PDG 2022 for the nominal 6 years, both orderings; for Daya Bay the
    released data."""
    return [f"model_uri={model_uri}", "predictor=surrogate", "referee=true"]


__all__ = ["JOB", "FitNotConverged", "fit", "promotion_overrides", "record"]
