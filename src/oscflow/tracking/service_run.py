"""One MLflow run per service computation, recorded the same way for every service.

``service_run`` is the whole recording contract: it creates the run (service tags, the config
hash, the git commit and the caller's tags: model version and triggering event when a worker
runs it), logs the resolved config as params, hands the service a ``ServiceRun`` to link the
model version, log metrics and write artifacts into, and ends the run FINISHED (artifacts
uploaded), KILLED (interrupted) or FAILED (with the reason as ``oscflow.failure_reason``).
The error always re-raises: a worker decides about retries, the CLI about the message."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from ..config import to_container
from . import lineage, runs, tags

# (field of a predictor's ``info()``, tag): which model version a result came from.
VERSION_FIELDS = (
    ("registered_model", tags.MODEL_NAME),
    ("version", tags.MODEL_VERSION),
    ("training_run_id", tags.MODEL_TRAINING_RUN),
)


@dataclasses.dataclass
class ServiceRun:
    """The open run a service records into; files written to ``artifact_dir`` are uploaded
    when the run ends (also when it fails: diagnostics survive)."""

    client: MlflowClient
    run_id: str
    artifact_dir: Path
    given_tags: Mapping[str, str]

    def set_tag(self, key: str, value: Any) -> None:
        self.client.set_tag(self.run_id, key, str(value))

    def link_version(self, info: Mapping[str, Any]) -> None:
        """Tag the model version ``info`` (a predictor's ``info()``) names, unless the caller
        already did (a worker's tags name the version it was asked to serve)."""
        for field, key in VERSION_FIELDS:
            value = info.get(field)
            if value and key not in self.given_tags:
                self.set_tag(key, value)

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        """Summary metrics of the result (one value each, step 0)."""
        batch = [Metric(k, float(v), 0, 0) for k, v in metrics.items()]
        for start in range(0, len(batch), 1000):  # MLflow's batch limit
            self.client.log_batch(self.run_id, metrics=batch[start : start + 1000])

    def write_json(self, name: str, payload: Any) -> Path:
        """An artifact ``name`` with ``payload`` as JSON (atomic write; floats only: NaN is
        refused, it is not JSON)."""
        path = self.artifact_dir / name
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(payload, indent=2, default=float, allow_nan=False))
        os.replace(tmp, path)
        return path


def failure_reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@contextlib.contextmanager
def service_run(
    cfg: DictConfig,
    service: str,
    run_name: str,
    given_tags: Mapping[str, str] | None = None,
    extra_tags: Mapping[str, str] | None = None,
    on_failure: Callable[[ServiceRun, BaseException], str | None] | None = None,
    experiment_name: str | None = None,
) -> Iterator[ServiceRun]:
    """Record the block as one run of ``service`` in ``logger.experiment_name`` (or
    ``experiment_name``). ``on_failure(run, exc)`` may record diagnostics and return the
    reason to store (default: the exception's type and message)."""
    client, exp_id = runs.service_experiment(cfg, experiment_name)
    resolved = to_container(cfg)
    given = {k: str(v) for k, v in (given_tags or {}).items()}
    base = {
        tags.SERVICE: service,
        tags.SERVICE_CONFIG_HASH: lineage.service_config_hash(resolved),
        tags.GIT_COMMIT: lineage.git_commit(cfg.paths.root_dir),
        **{k: str(v) for k, v in (extra_tags or {}).items()},
    }
    run_id = client.create_run(exp_id, run_name=run_name, tags={**base, **given}).info.run_id
    with tempfile.TemporaryDirectory(prefix=f"oscflow-{service}-") as tmp:
        run = ServiceRun(client, run_id, Path(tmp), given)
        try:
            runs.log_params(client, run_id, resolved)
            yield run
            client.log_artifacts(run_id, tmp)
        except BaseException as exc:
            reason = (on_failure(run, exc) if on_failure else None) or failure_reason(exc)
            with contextlib.suppress(Exception):  # the failure itself matters more
                if any(Path(tmp).iterdir()):
                    client.log_artifacts(run_id, tmp)
            if isinstance(exc, KeyboardInterrupt):
                client.set_tag(run_id, tags.FAILURE_REASON, "interrupted")
                client.set_terminated(run_id, status="KILLED")
            else:
                runs.mark_failed(client, run_id, reason)
            raise
        client.set_terminated(run_id, "FINISHED")
