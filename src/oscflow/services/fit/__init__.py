"""The fit service: measure oscillation parameters from a binned spectrum with iminuit, using a
registered surrogate (or the exact model, which also referees the surrogate).

Service contract (``oscflow.services``): ``JOB``, ``promotion_overrides``, ``record``,
``ROUTES`` (on ``champion``), ``COMMAND`` (``oscflow fit``). Modules: ``setup`` (the config
parsed into what every fit of a run shares),
``predictors`` (surrogate / exact reactor spectra), ``model`` (parameters, expectation, pulls),
``observation`` (Asimov, toys, files), ``minimize`` (MIGRAD/HESSE/MINOS, validity), ``scans``,
``toys``, ``run`` (orchestration, referee, mass ordering), ``recording`` (MLflow), ``api`` (the
command line's and Python's entry points), ``plots``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from .. import Command, Routes
from .api import fit, run_cli, summary_table
from .minimize import FitNotConverged

JOB = "fit"
ROUTES = Routes(on_alias=("champion",))
COMMAND = Command(
    summary="iminuit fit of a spectrum: model_uri=<uri> observation=asimov|toy|real|file "
    "[observation.path=<file>] [observation.n_toys=N]",
    run=run_cli,
    human=summary_table,
)


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


__all__ = ["COMMAND", "JOB", "ROUTES", "FitNotConverged", "fit", "promotion_overrides", "record"]
