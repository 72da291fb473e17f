"""Running one job: a service on one model version, exactly once per
(model, version, service, config hash).

"Done" is defined by MLflow, not by the queue: a FINISHED run carrying the job's tags. A job
holds a lease in the ledger while it runs (renewed by a heartbeat), so two workers never run
the same job at once and a job whose worker died is taken over once its lease expires; the
abandoned MLflow run is then ended FAILED with that reason.

Errors are classified (``classify``): a permanent one (a config error, a model or version that
does not exist, lineage the version lacks, a corrupt artifact, any ``OscflowError``) fails the
job at once, one FAILED run with the reason and no retries; a transient one (connection
errors, timeouts, an unavailable server) is raised for the queue's back-off."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Self

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from ..config import load, to_container
from ..errors import OscflowError
from ..services import condition, load_service
from ..tracking.lineage import service_config_hash as lineage_hash
from ..tracking.runs import mark_failed
from .ledger import Ledger, job_key
from .routing import JobSpec

log = logging.getLogger("oscflow.jobs")

# Tags every service run started by the platform carries (DESIGN.md lineage).
TAG_SERVICE = "oscflow.service"
TAG_MODEL = "oscflow.model.name"
TAG_VERSION = "oscflow.model.version"
TAG_HASH = "oscflow.service.config_hash"
TAG_EVENT = "oscflow.event_id"
TAG_TRAINING_RUN = "oscflow.model.training_run"
TAG_JOB = "oscflow.job_key"


class JobBusy(RuntimeError):
    """Another worker holds this job's lease; try again later."""


class LineageMissing(OscflowError):
    """A model version (and its training run) lacks the tags a job's config is composed from.

    Permanent for this attempt: the job fails at once, and the reconciler runs it when the
    tags appear (its plan then succeeds and names a job that has not run)."""

    def __init__(self, spec: JobSpec, missing: list[str], run_id: str | None) -> None:
        where = f"nor its training run {run_id}" if run_id else "and it has no training run"
        super().__init__(
            f"{spec.model} version {spec.version} has no {', '.join(missing)} tag(s), {where}: "
            f"the {spec.service} job cannot know the experiment and dataset it was trained on. "
            f"Fix: tag the version (MlflowClient().set_model_version_tag({spec.model!r}, "
            f"{spec.version!r}, 'oscflow.dataset.name', '<data>'), likewise "
            "oscflow.experiment) — the reconciler then runs the job — or register models with "
            "oscflow train, which tags them at registration"
        )


PERMANENT, TRANSIENT = "permanent", "transient"
# MLflow error codes that a retry cannot change.
PERMANENT_CODES = frozenset(
    {
        "RESOURCE_DOES_NOT_EXIST",
        "NOT_FOUND",
        "ENDPOINT_NOT_FOUND",
        "INVALID_PARAMETER_VALUE",
        "BAD_REQUEST",
        "INVALID_STATE",
        "RESOURCE_ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
        "CUSTOMER_UNAUTHORIZED",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "TEMPORARILY_UNAVAILABLE",
        "REQUEST_LIMIT_EXCEEDED",
        "RESOURCE_EXHAUSTED",
        "DEADLINE_EXCEEDED",
        "ABORTED",
        "SERVICE_UNDER_MAINTENANCE",
        "WORKSPACE_TEMPORARILY_UNAVAILABLE",
    }
)
# Exception classes (by name, anywhere in the MRO: builtins, requests, urllib3, botocore,
# redis, SQLAlchemy/psycopg2) that mean the network or a server was unavailable.
NETWORK_ERRORS = frozenset(
    {
        "ConnectionError",
        "TimeoutError",
        "Timeout",
        "ConnectTimeout",
        "ReadTimeout",
        "NewConnectionError",
        "MaxRetryError",
        "ProtocolError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "EndpointConnectionError",
        "OperationalError",
    }
)


def _chain(exc: BaseException) -> Iterable[BaseException]:
    """``exc`` and its causes (``raise … from``) and contexts."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def classify(exc: BaseException) -> str:
    """``PERMANENT`` or ``TRANSIENT``. A network failure anywhere in the chain is transient
    (a ConfigError "cannot load …" caused by a refused connection included); else the first
    ``OscflowError`` (config errors, missing lineage, corrupt artifacts, fits that did not
    converge) or MLflow error with a permanent code is permanent; anything else is transient
    (retried, as before)."""
    links = list(_chain(exc))
    if any(c.__name__ in NETWORK_ERRORS for e in links for c in type(e).__mro__):
        return TRANSIENT
    for e in links:
        if isinstance(e, OscflowError):
            return PERMANENT
        if isinstance(e, MlflowException):
            if e.error_code in PERMANENT_CODES:
                return PERMANENT
            if e.error_code in TRANSIENT_CODES:
                return TRANSIENT
    return TRANSIENT


@dataclass(frozen=True)
class Planned:
    spec: JobSpec
    cfg: DictConfig
    config_hash: str

    @property
    def key(self) -> str:
        return job_key(self.spec.model, self.spec.version, self.spec.service, self.config_hash)

    def ledger_fields(self) -> dict[str, Any]:
        return {
            "service": self.spec.service,
            "model": self.spec.model,
            "version": self.spec.version,
            "config_hash": self.config_hash,
            "event_id": self.spec.event_id,
        }


def service_config_hash(cfg: DictConfig) -> str:
    """Hash of what the service computes (not where it writes or logs)."""
    return lineage_hash(to_container(cfg))


_PLANS: dict[tuple[int, str, str, str], tuple[DictConfig, str]] = {}


def plan(spec: JobSpec, platform: DictConfig) -> Planned:
    """The service's config for this version (its promotion defaults + platform overrides).

    Composed once per (platform config, service, model, version) in a process: the conf/
    files a worker started with define its jobs. A version without lineage raises
    ``LineageMissing`` and nothing is kept, so a later call sees tags added meanwhile."""
    key = (id(platform), spec.service, spec.model, spec.version)
    if key not in _PLANS:
        _PLANS[key] = _compose(spec, platform)
    cfg, digest = _PLANS[key]
    return Planned(spec, cfg, digest)


VERSION_CONFIG_TAGS = {"oscflow.experiment": "experiment", "oscflow.dataset.name": "data"}


def version_overrides(spec: JobSpec, tracking_uri: str) -> list[str]:
    """``experiment=…`` and ``data=…`` the version was trained with, so that a service runs
    any experiment's model with its own config: the version's tags (set at registration by
    ``oscflow train``), else its training run's. A version that does not exist gives [] (the
    service reports it); one whose lineage is in neither place raises ``LineageMissing`` —
    never the platform's defaults in its place."""
    client = MlflowClient(tracking_uri)
    try:
        mv = client.get_model_version(spec.model, spec.version)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise
    tags = dict(mv.tags)
    run_id = tags.get("oscflow.training_run") or mv.run_id
    missing = [t for t in VERSION_CONFIG_TAGS if t not in tags]
    if missing and run_id:
        try:
            run_tags = client.get_run(run_id).data.tags
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            run_tags = {}
        tags.update({t: run_tags[t] for t in missing if t in run_tags})
    missing = [t for t in VERSION_CONFIG_TAGS if t not in tags]
    if missing:
        raise LineageMissing(spec, missing, run_id)
    return [f"{group}={tags[tag]}" for tag, group in VERSION_CONFIG_TAGS.items()]


_VERSIONS: dict[tuple[str, str], tuple[list[str], DictConfig]] = {}


def version_config(spec: JobSpec, platform: DictConfig) -> tuple[list[str], DictConfig]:
    """The version's :func:`version_overrides` and its experiment's config
    (conf/experiment/<name>.yaml); a version not found: the platform's, not kept."""
    key = (spec.model, spec.version)
    if key in _VERSIONS:
        return _VERSIONS[key]
    own = version_overrides(spec, str(platform.tracking_uri))
    found = own, (load("platform", own).experiment if own else platform.experiment)
    if own:
        _VERSIONS[key] = found
    return found


def experiment_overrides(spec: JobSpec, platform: DictConfig) -> list[str] | None:
    """The version's experiment's overrides for this service (``experiment.services``), or None
    if the experiment does not take the service. No ``services`` block: every service, as is."""
    services = version_config(spec, platform)[1].get("services")
    if services is None:
        return []
    if spec.service not in services:
        return None
    return [str(o) for o in services[spec.service] or []]


def routed(specs: Iterable[JobSpec], platform: DictConfig) -> list[JobSpec]:
    """The jobs whose service the version's experiment takes, e.g. no JUNO solar-antineutrino
    sensitivity on a Daya Bay model (conf/experiment/dayabay.yaml), and that the service can
    serve (its ``ROUTES.applies``, e.g. no mass-ordering job for a version without a pair). A
    version that cannot be told yet (no lineage, MLflow unreachable) keeps its jobs: the job
    decides when it runs (``execute``), and records why if it cannot."""
    out = []
    for s in specs:
        try:
            taken = experiment_overrides(s, platform) is not None and _serves(s, platform)
        except Exception as exc:  # noqa: BLE001 — decided (and reported) by the job
            log.info("routing %s decided by its job (%s)", s, exc)
            taken = True
        if taken:
            out.append(s)
    return out


def _serves(spec: JobSpec, platform: DictConfig) -> bool:
    check = condition(spec.service)
    if check is None:
        return True
    mv = MlflowClient(str(platform.tracking_uri)).get_model_version(spec.model, spec.version)
    return bool(check(dict(mv.tags)))


def _compose(spec: JobSpec, platform: DictConfig) -> tuple[DictConfig, str]:
    module = load_service(spec.service)
    own = version_config(spec, platform)[0]
    keys = {o.partition("=")[0] for o in own}
    overrides = [o for o in platform.service_common if o.partition("=")[0] not in keys]
    overrides += own
    overrides += list(module.promotion_overrides(f"models:/{spec.model}/{spec.version}"))
    overrides += experiment_overrides(spec, platform) or []
    overrides += list(platform.service_overrides.get(spec.service) or [])
    overrides.append(f"logger.tracking_uri={platform.tracking_uri}")
    cfg = load(module.JOB, overrides)
    return cfg, service_config_hash(cfg)


def _filter(planned: Planned, status: str | None = None) -> str:
    s = planned.spec
    parts = [
        f"tags.`{TAG_SERVICE}` = '{s.service}'",
        f"tags.`{TAG_MODEL}` = '{s.model}'",
        f"tags.`{TAG_VERSION}` = '{s.version}'",
        f"tags.`{TAG_HASH}` = '{planned.config_hash}'",
    ]
    if status:
        parts.append(f"attributes.status = '{status}'")
    return " and ".join(parts)


def _experiment_ids(client: MlflowClient) -> list[str]:
    return [e.experiment_id for e in client.search_experiments()]


def service_runs(client: MlflowClient, planned: Planned, status: str | None = None) -> list[Any]:
    ids = _experiment_ids(client)
    return client.search_runs(ids, _filter(planned, status), max_results=50) if ids else []


def done(client: MlflowClient, planned: Planned) -> str | None:
    """Run id of a FINISHED run for this job, if there is one."""
    runs = service_runs(client, planned, "FINISHED")
    return runs[0].info.run_id if runs else None


def abandon_stale_runs(client: MlflowClient, planned: Planned, reason: str) -> list[str]:
    """End RUNNING runs of this job (their worker is gone: we hold the lease now) as FAILED."""
    ended = []
    for run in service_runs(client, planned, "RUNNING"):
        mark_failed(client, run.info.run_id, reason)
        ended.append(run.info.run_id)
    return ended


class _Heartbeat:
    """Renews the lease every ``period`` s until stopped."""

    def __init__(self, ledger: Ledger, key: str, owner: str, lease_s: float, period: float):
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, args=(ledger, key, owner, lease_s, period), daemon=True
        )

    def _loop(self, ledger: Ledger, key: str, owner: str, lease_s: float, period: float) -> None:
        while not self._stop.wait(period):
            ledger.renew(key, owner, lease_s)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def execute(
    spec: JobSpec, platform: DictConfig, ledger: Ledger, owner: str, final_attempt: bool
) -> dict[str, Any]:
    """Run one job unless it is done; returns {"state", "run_id", ...}.

    Raises JobBusy while another worker holds the lease, and re-raises a transient failure
    (the queue retries it; the service has ended its run FAILED with the reason). A permanent
    failure (``classify``) is final at once: the ledger says failed, one FAILED run carries the
    reason, and {"state": "failed", …} is returned, so that the queue does not retry."""
    try:
        planned = plan(spec, platform)
        taken = experiment_overrides(spec, platform) is not None
    except Exception as exc:
        if classify(exc) == TRANSIENT and not final_attempt:
            raise
        return _fail(platform, ledger, spec, None, exc)
    if not taken:  # routed while its experiment could not be told (``routed``)
        reason = "the version's experiment does not take this service"
        ledger.skipped(planned.key, planned.ledger_fields(), reason)
        return {"state": "skipped", "reason": reason, "key": planned.key}
    client = MlflowClient(str(platform.tracking_uri))
    existing = done(client, planned)
    if existing:
        ledger.settle(planned.key, planned.ledger_fields(), existing)
        return {"state": "skipped", "reason": "already done", "run_id": existing}
    lease_s = float(platform.workers.lease_s)
    if not ledger.claim(planned.key, planned.ledger_fields(), owner, lease_s):
        raise JobBusy(planned.key)
    try:
        existing = done(client, planned)  # finished between our check and the claim
        if existing:
            ledger.finish(planned.key, owner, "finished", run_id=existing)
            return {"state": "skipped", "reason": "already done", "run_id": existing}
        abandon_stale_runs(client, planned, "abandoned: its worker stopped (lease expired)")
        module = load_service(spec.service)
        tags = _tags(client, planned)
        with _Heartbeat(ledger, planned.key, owner, lease_s, float(platform.workers.heartbeat_s)):
            result = module.record(planned.cfg, tags)
    except Exception as exc:
        if classify(exc) == PERMANENT:
            ledger.finish(planned.key, owner, "failed", error=_reason(exc))
            return _fail(platform, ledger, spec, planned, exc)
        ledger.finish(
            planned.key, owner, "failed" if final_attempt else "queued", error=_reason(exc)
        )
        raise
    run_id = str(result.get("mlflow_run_id"))
    ledger.finish(planned.key, owner, "finished", run_id=run_id)
    return {"state": "finished", "run_id": run_id, "key": planned.key}


UNPLANNED = "unplanned"  # the config hash of a job whose config could not be composed


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _fail(
    platform: DictConfig,
    ledger: Ledger,
    spec: JobSpec,
    planned: Planned | None,
    exc: BaseException,
) -> dict[str, Any]:
    """Record a final failure without a retry: the ledger row (an ``UNPLANNED`` one when the
    config could not be composed) and one FAILED run with the reason."""
    reason = _reason(exc)
    log.warning("job %s failed (%s, not retried): %s", spec, classify(exc), reason)
    if planned is None:
        fields = {
            "service": spec.service,
            "model": spec.model,
            "version": spec.version,
            "config_hash": UNPLANNED,
            "event_id": spec.event_id,
        }
        ledger.failed(job_key(spec.model, spec.version, spec.service, UNPLANNED), fields, reason)
    run_id = record_failure(platform, spec, reason)
    return {"state": "failed", "error": reason, "run_id": run_id, "permanent": True}


def _tags(client: MlflowClient, planned: Planned) -> Mapping[str, str]:
    s = planned.spec
    tags = {
        TAG_SERVICE: s.service,
        TAG_MODEL: s.model,
        TAG_VERSION: s.version,
        TAG_HASH: planned.config_hash,
        TAG_EVENT: s.event_id or "reconciler",
        TAG_JOB: planned.key,
        "oscflow.started_at": f"{time.time():.3f}",
    }
    try:
        mv = client.get_model_version(s.model, s.version)
        tags[TAG_TRAINING_RUN] = mv.tags.get("oscflow.training_run") or (mv.run_id or "")
    except Exception:  # noqa: BLE001 — lineage is best effort; the service reports a bad model
        tags[TAG_TRAINING_RUN] = ""
    return tags


FAILURE_EXPERIMENT = "oscflow-jobs"


def record_failure(platform: DictConfig, spec: JobSpec, error: str) -> str | None:
    """After the last retry: make sure a FAILED run with the error exists for this job.

    The service normally recorded one itself; when the job failed before the service started
    (unknown version, unloadable config) the run is created here, in ``oscflow-jobs``."""
    from ..tracking.runs import ensure_experiment

    client = MlflowClient(str(platform.tracking_uri))
    tags = {
        TAG_SERVICE: spec.service,
        TAG_MODEL: spec.model,
        TAG_VERSION: spec.version,
        TAG_EVENT: spec.event_id or "reconciler",
    }
    try:
        planned = plan(spec, platform)
        if service_runs(client, planned, "FAILED"):
            return None
        tags[TAG_HASH] = planned.config_hash
        tags[TAG_JOB] = planned.key
    except Exception as exc:  # noqa: BLE001 — record the job's own error below
        log.info("no plan for %s (%s); recording the failure without a config hash", spec, exc)
    exp = ensure_experiment(client, FAILURE_EXPERIMENT, None)
    run = client.create_run(exp, tags=tags, run_name=f"{spec.service}-{spec.model}-v{spec.version}")
    mark_failed(client, run.info.run_id, error)
    return run.info.run_id
