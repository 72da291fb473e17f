"""``OscflowOptunaSweeper``: Hydra multirun driven by an Optuna 5 study (ask/tell).

Each sweep process: validates the search space against the composed config (before any
trial), creates or joins the study in its storage (``load_if_exists``: several processes on
one storage share a study; re-running resumes it), opens one MLflow parent run, then asks
trials in batches of ``n_jobs`` and launches them through Hydra's launcher. Every trial's job
gets ``sweep.*`` overrides (study, storage, trial number, parent run, monitor), so the training
job reports its per-epoch ``monitor`` value to the study through the storage and stops when the
pruner says so (the trial ends PRUNED). While a batch runs, a thread records heartbeats of its
trials; a trial whose process died stops heartbeating, is failed once its grace period passes
and re-queued (``RetryHeartbeatStaleTrialCallback``), then picked up by whichever process asks
next. The study is done when it holds ``n_trials`` finished (complete or pruned) trials.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import TrialState

from . import space

log = logging.getLogger(__name__)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def make_sampler(cfg: dict[str, Any]) -> optuna.samplers.BaseSampler:
    cfg = dict(cfg)
    name = cfg.pop("name", "tpe")
    table = {
        "tpe": optuna.samplers.TPESampler,
        "cmaes": optuna.samplers.CmaEsSampler,
        "gp": optuna.samplers.GPSampler,
        "random": optuna.samplers.RandomSampler,
        "nsga2": optuna.samplers.NSGAIISampler,
        "grid": optuna.samplers.GridSampler,
    }
    if name not in table:
        raise space.SearchSpaceError(
            f"hydra.sweeper.sampler.name: unknown sampler {name!r}; use one of {sorted(table)}"
        )
    return table[name](**cfg)


def make_storage(
    url: str, heartbeat_interval: int, grace_period: int, max_retry: int
) -> RDBStorage:
    engine_kwargs = (
        {"pool_pre_ping": True}
        if not url.startswith("sqlite")
        else {"connect_args": {"timeout": 60}}
    )
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(5):
        try:
            return RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                    max_retry=max_retry
                ),
            )
        except (IntegrityError, ProgrammingError) as exc:
            # Several sweep processes starting on an empty PostgreSQL database race to create
            # Optuna's schema (CREATE TYPE/TABLE): the losers retry and find it there.
            if attempt == 4:
                raise
            log.info("storage schema being created by another process (%s); retrying", exc)
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


class _Heartbeat:
    """Record heartbeats for running trials until stopped."""

    def __init__(self, storage: RDBStorage, trial_ids: Sequence[int], interval: float) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, args=(storage, list(trial_ids), interval), daemon=True
        )

    def _beat(self, storage: RDBStorage, ids: list[int], interval: float) -> None:
        while not self._stop.is_set():
            for i in ids:
                storage.record_heartbeat(i)
            self._stop.wait(interval)

    def __enter__(self) -> _Heartbeat:  # noqa: PYI034
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class OscflowOptunaSweeper(Sweeper):
    def __init__(self, **kwargs: Any) -> None:
        self.opts: dict[str, Any] = {
            k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
            for k, v in kwargs.items()
        }
        self.opts["params"] = space.flatten(self.opts.get("params") or {})
        self.opts["conditional"] = {
            key: {choice: space.flatten(sub or {}) for choice, sub in (per or {}).items()}
            for key, per in (self.opts.get("conditional") or {}).items()
        }
        self.config: DictConfig | None = None
        self.launcher: Any = None
        self.hydra_context: HydraContext | None = None
        self.job_idx = 0

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    # ------------------------------------------------------------------ validation
    def _validate(self, arguments: list[str]) -> None:
        o = self.opts
        params, conditional = dict(o.get("params") or {}), dict(o.get("conditional") or {})
        space.validate(params, conditional)
        cfg, context = self.config, self.hydra_context
        assert cfg is not None
        assert context is not None
        self._check_keys(cfg, params, [])
        for key, per_choice in conditional.items():
            for choice, sub in (per_choice or {}).items():
                choice_override = space.to_override(key, choice)
                composed = context.config_loader.load_sweep_config(
                    cfg, [*arguments, choice_override]
                )
                self._check_keys(composed, sub or {}, [choice_override])
        objectives, directions = list(o.get("objectives") or []), list(o.get("directions") or [])
        if not objectives or len(objectives) != len(directions):
            raise space.SearchSpaceError(
                "hydra.sweeper.objectives/directions: give one direction per objective"
            )
        bad = [d for d in directions if d not in ("minimize", "maximize")]
        if bad:
            raise space.SearchSpaceError(
                f"hydra.sweeper.directions: {bad} are not minimize/maximize"
            )
        if len(objectives) > 1 and (o.get("pruner") or {}).get("name", "none") != "none":
            raise space.SearchSpaceError(
                "hydra.sweeper.pruner: Optuna cannot prune multi-objective studies; set pruner.name=none"
            )
        self._pruner()
        if int(o.get("n_trials", 0)) < 1 or int(o.get("n_jobs", 1)) < 1:
            raise space.SearchSpaceError("hydra.sweeper.n_trials and n_jobs must be >= 1")

    def _pruner(self) -> optuna.pruners.BasePruner:
        try:
            from oscflow.surrogate.pruning import make_pruner  # torch: only when sweeping

            return make_pruner(dict(self.opts.get("pruner") or {}))
        except (ValueError, TypeError) as exc:
            raise space.SearchSpaceError(f"hydra.sweeper.pruner: {exc}") from None

    @staticmethod
    def _check_keys(cfg: DictConfig, entries: dict[str, Any], context: list[str]) -> None:
        choices = OmegaConf.to_container(cfg.hydra.runtime.choices)
        assert isinstance(choices, dict)
        groups = set(choices)
        for key in entries:
            if key in groups:
                continue
            if OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
                when = f" (with {' '.join(context)})" if context else ""
                raise space.SearchSpaceError(
                    f"hydra.sweeper.params.{key}: the config has no key {key!r}{when} and no config "
                    "group of that name; check the spelling against `oscflow train --cfg`"
                )

    # ------------------------------------------------------------------ sweep
    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None
        self._validate(arguments)
        o = self.opts
        storage_url = _absolute_sqlite(str(o["storage"]))
        storage = make_storage(
            storage_url, int(o["heartbeat_interval"]), int(o["grace_period"]), int(o["max_retry"])
        )
        directions = list(o["directions"])
        study = optuna.create_study(
            study_name=str(o["study_name"]),
            storage=storage,
            sampler=make_sampler(dict(o.get("sampler") or {})),
            pruner=self._pruner(),
            directions=directions,
            load_if_exists=True,
        )
        from oscflow.surrogate.pruning import PRUNER_ATTR

        study.set_user_attr(PRUNER_ATTR, dict(o.get("pruner") or {"name": "none"}))
        parent = _ParentRun(self.config, o, storage_url)
        params, conditional = dict(o.get("params") or {}), dict(o.get("conditional") or {})
        n_trials, n_jobs = int(o["n_trials"]), int(o["n_jobs"])
        objectives = list(o["objectives"])
        returns: list[Any] = []
        try:
            failures: list[str] = []
            while True:
                with _quiet_optuna():
                    fail_stale_trials(study)
                trials = study.get_trials(deepcopy=False)
                done = sum(t.state in FINISHED for t in trials)
                running = sum(t.state == TrialState.RUNNING for t in trials)
                waiting = sum(t.state == TrialState.WAITING for t in trials)
                room = n_trials - done - running
                if done >= n_trials or (room <= 0 and waiting == 0 and running == 0):
                    break
                if room <= 0:  # others are running the rest; wait for them (or for staleness)
                    time.sleep(min(2.0, float(o["heartbeat_interval"])))
                    continue
                with _quiet_optuna():
                    batch = [study.ask() for _ in range(min(n_jobs, room))]
                batch = [t for t in batch if not _surplus(study, t, n_trials)]
                if not batch:
                    continue
                overrides = []
                for trial in batch:
                    values = space.suggest(trial, params, conditional)
                    trial.set_user_attr(
                        "overrides", [space.to_override(k, v) for k, v in values.items()]
                    )
                    overrides.append(
                        [
                            *arguments,
                            *(space.to_override(k, v) for k, v in values.items()),
                            f"sweep.study_name={study.study_name}",
                            f"sweep.storage={storage_url}",
                            f"sweep.trial_number={trial.number}",
                            f"sweep.parent_run_id={parent.run_id}",
                            f"sweep.monitor={o['monitor'] if len(objectives) == 1 else 'null'}",
                        ]
                    )
                self.validate_batch_is_legal(overrides)
                with _Heartbeat(
                    storage,
                    [t._trial_id for t in batch],
                    max(1.0, int(o["heartbeat_interval"]) / 2),
                ):
                    results = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
                self.job_idx += len(batch)
                for trial, ret in zip(batch, results, strict=True):
                    error = self._tell(study, trial, ret, objectives)
                    if error:
                        failures.append(f"trial {trial.number}: {error}")
                returns.extend(results)
                if len(failures) >= int(o["max_failures"]):
                    msg = (
                        f"{len(failures)} trials failed (max_failures={o['max_failures']}); last: "
                        f"{failures[-1]}. Fix the configuration; the study keeps what finished"
                    )
                    raise RuntimeError(msg)
            parent.finish(study)
        except BaseException as exc:
            parent.fail(exc)
            raise
        return returns

    @staticmethod
    def _tell(
        study: optuna.Study, trial: optuna.Trial, ret: Any, objectives: list[str]
    ) -> str | None:
        """Report a finished job to the study; returns an error text if the job failed."""
        from hydra.core.utils import JobStatus

        if ret.status == JobStatus.COMPLETED:
            result = ret.return_value
            try:
                values = [float(result["metrics"][k]) for k in objectives]
            except (KeyError, TypeError) as exc:
                study.tell(trial, state=TrialState.FAIL)
                return f"objective missing from the job's result ({exc})"
            study.tell(trial, values if len(values) > 1 else values[0])
            return None
        raised = ret._return_value  # Hydra keeps the job's exception here
        if isinstance(raised, optuna.TrialPruned):
            study.tell(trial, state=TrialState.PRUNED)
            return None
        log.error("trial %d failed: %s", trial.number, raised)
        study.tell(trial, state=TrialState.FAIL)
        return f"{type(raised).__name__}: {raised}"


def _surplus(study: optuna.Study, trial: optuna.Trial, n_trials: int) -> bool:
    """Two processes may ask at the same moment for the last slot: the later trial (higher
    number) finds n_trials live trials before it, is marked surplus and closed as FAIL."""
    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    before = sum(
        t.state in live and t.number < trial.number for t in study.get_trials(deepcopy=False)
    )
    if before < n_trials:
        return False
    study._storage.set_trial_system_attr(trial._trial_id, "surplus", True)
    study.tell(trial, state=TrialState.FAIL)
    return True


@contextlib.contextmanager
def _quiet_optuna() -> Any:
    """Heartbeats with ask/tell are what this sweeper is for: silence Optuna's notes that they
    are meant for Study.optimize and that stale-trial failing is experimental."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        yield


def _absolute_sqlite(url: str) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url[len(prefix) :].startswith("/"):
        return prefix + str(Path(url[len(prefix) :]).resolve())
    return url


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}" if ":" in creds else url
    return url


class _ParentRun:
    """The MLflow parent run of one sweep process."""

    def __init__(self, cfg: DictConfig, opts: dict[str, Any], storage_url: str) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        from oscflow.tracking.runs import ensure_experiment, tracking_uri

        root = Path(cfg.paths.root_dir)
        self.uri = tracking_uri(str(cfg.logger.tracking_uri), root)
        mlflow.set_tracking_uri(self.uri)
        self.client = MlflowClient(self.uri)
        name = opts.get("mlflow_experiment") or str(cfg.logger.experiment_name)
        exp_id = ensure_experiment(self.client, name, str(cfg.logger.artifact_location))
        run = self.client.create_run(exp_id, run_name=f"sweep-{opts['study_name']}")
        self.run_id = run.info.run_id
        self.opts = opts
        self.cfg = cfg
        info = {
            "sweep.study_name": str(opts["study_name"]),
            "sweep.storage": _redact(storage_url),
            "sweep.sampler": json.dumps(
                OmegaConf.to_container(OmegaConf.create(opts.get("sampler") or {}))
            ),
            "sweep.pruner": json.dumps(
                OmegaConf.to_container(OmegaConf.create(opts.get("pruner") or {}))
            ),
            "sweep.n_trials": str(opts["n_trials"]),
            "sweep.n_jobs": str(opts["n_jobs"]),
            "sweep.objectives": ",".join(opts["objectives"]),
            "sweep.directions": ",".join(opts["directions"]),
        }
        for k, v in info.items():
            self.client.log_param(self.run_id, k, v[:500])
        self.client.set_tag(self.run_id, "oscflow.sweep", "parent")
        space_doc = {
            "params": opts.get("params") or {},
            "conditional": opts.get("conditional") or {},
        }
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "search_space.json"
            path.write_text(
                json.dumps(OmegaConf.to_container(OmegaConf.create(space_doc)), indent=2)
            )
            self.client.log_artifact(self.run_id, str(path))

    def finish(self, study: optuna.Study) -> None:
        trials = study.get_trials(deepcopy=False)
        counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
        for k, v in counts.items():
            self.client.log_metric(self.run_id, f"trials_{k}", v)
        epochs = [len(t.intermediate_values) for t in trials if t.state in FINISHED]
        self.client.log_metric(self.run_id, "epochs_run", float(sum(epochs)))
        best = study.best_trials
        if best:
            b = best[0]
            self.client.set_tag(self.run_id, "sweep.best_trial", str(b.number))
            for i, v in enumerate(b.values):
                self.client.log_metric(self.run_id, f"best_{self.opts['objectives'][i]}", v)
            self.client.log_param(self.run_id, "sweep.best_params", json.dumps(b.params)[:500])
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "trials.json").write_text(
                json.dumps(
                    [
                        {
                            "number": t.number,
                            "state": t.state.name,
                            "params": t.params,
                            "values": t.values,
                            "intermediate": t.intermediate_values,
                            "user_attrs": t.user_attrs,
                        }
                        for t in trials
                    ],
                    indent=2,
                    default=str,
                )
            )
            for fname, plot in _plots(study, len(self.opts["objectives"])).items():
                plot.figure.savefig(Path(tmp) / fname, dpi=110)
            for f in Path(tmp).iterdir():
                self.client.log_artifact(self.run_id, str(f))
        self.client.set_terminated(self.run_id, "FINISHED")
        if self.opts.get("compare", True) and any(t.state == TrialState.COMPLETE for t in trials):
            self.compare()

    def compare(self) -> None:
        """``oscflow compare`` of this sweep's finished trials, linked from the parent run. A
        report that cannot be made is a warning, never the sweep's failure."""
        from hydra.core.global_hydra import GlobalHydra
        from hydra.initialize import get_gh_backup, restore_gh_from_backup

        from oscflow.compare import run as compare
        from oscflow.config import load

        root = Path(self.cfg.paths.root_dir).resolve()
        # The sweep's own Hydra is initialised: compose the comparison's config beside it
        # (Hydra's own backup and restore, as its initialize() does).
        backup = get_gh_backup()
        GlobalHydra.instance().clear()
        try:
            cfg = load(
                "compare",
                [
                    f"name={json.dumps(str(self.cfg.logger.experiment_name))}",
                    f"sweep={self.run_id}",
                    f"paths.root_dir={json.dumps(str(root))}",
                    f"logger.tracking_uri={json.dumps(self.uri)}",
                    f"logger.artifact_location={json.dumps(str(self.cfg.logger.artifact_location))}",
                    f"experiment={self.cfg.experiment.name}",
                ],
            )
        except Exception as exc:  # noqa: BLE001 - the sweep is done; the report is extra
            log.warning("no comparison of the sweep's trials: %s", exc)
            return
        finally:
            restore_gh_from_backup(backup)
        try:
            result = compare(cfg)
        except Exception as exc:  # noqa: BLE001
            log.warning("no comparison of the sweep's trials: %s", exc)
            return
        rec = result.get("comparison_run") or {}
        log.info(
            "comparison of %d trials: run %s in %s %s",
            result["n"],
            rec.get("run_id"),
            rec.get("experiment"),
            rec.get("ui") or "",
        )

    def fail(self, exc: BaseException) -> None:
        self.client.set_tag(
            self.run_id, "oscflow.failure_reason", f"{type(exc).__name__}: {exc}"[:5000]
        )
        self.client.set_terminated(self.run_id, "FAILED")


def _plots(study: optuna.Study, n_objectives: int) -> dict[str, Any]:
    import matplotlib as mpl

    mpl.use("Agg")
    import warnings

    from optuna.visualization import matplotlib as ovm

    out: dict[str, Any] = {}
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib backend experimental
        if n_objectives == 1 and complete:
            out["optimization_history.png"] = ovm.plot_optimization_history(study)
            if len(complete) >= 2 and len(complete[0].params) >= 1:
                try:
                    out["param_importances.png"] = ovm.plot_param_importances(study)
                except (RuntimeError, ValueError) as exc:  # too few distinct values to rank
                    log.warning("no parameter-importance plot: %s", exc)
        elif n_objectives > 1 and complete:
            out["pareto_front.png"] = ovm.plot_pareto_front(study)
    return out
