"""The Optuna sweeper end to end: Hydra multirun processes on a real study storage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from helpers import make_clone, mlflow_store
from helpers import run as run_cmd

POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
DATA = {
    "name": "tsweep",
    "simulate": {"n_pairs": 30000, "seed": 31, "chunk": 15000},
    "spectra": {
        "method": "matrix",
        "energy": "prompt",
        "sampler": "lhs",
        "seed": 32,
        "inputs": ["sin2_th12", "sin2_th13", "dm2_21", "dm2_32"],
        "splits": {"train": 256, "val": 64, "test": 64},
        "chunk": 256,
        "dtype": "float32",
    },
    "loader": {"batch_size": 64, "eval_batch_size": 256, "num_workers": 0},
}
SPACE = """# @package _global_
defaults:
  - override /hydra/sweeper: oscflow_optuna
  - override /optim: adamw
logger:
  register: false
hydra:
  sweeper:
    study_name: tiny
    n_trials: 3
    sampler: {name: random, seed: 7}
    heartbeat_interval: 1
    grace_period: 3
    params:
      model: {type: categorical, choices: [seed_mlp, pca_mlp]}
      optim.lr: {type: float, low: 1.0e-3, high: 3.0e-3, log: true}
    conditional:
      model:
        seed_mlp:
          model.hidden: {type: categorical, choices: [[16, 16], [32, 32]]}
        pca_mlp:
          model.components: {type: int, low: 4, high: 8}
"""
pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_clone(tmp_path_factory.mktemp("sweeprepo"), "tsweep", DATA)
    (root / "conf/hparams_search/tiny.yaml").write_text(SPACE)
    (root / "conf/model/pca_mlp.yaml").write_text(
        "name: pca_mlp\noutput_transform: standard\nhidden: [16, 16]\ncomponents: 8\nactivation: silu\n"
    )
    run_cmd(root, "dvc", "repro", "spectra")
    return root


def _sweep_cmd(tmp: Path, study: str, storage: str, *extra: str) -> list[str]:
    return [
        "oscflow",
        "train",
        "-m",
        "hparams_search=tiny",
        "data=tsweep",
        f"hydra.sweeper.study_name={study}",
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweep.dir={tmp}/multirun/{study}",
        f"logger.tracking_uri={mlflow_store(tmp)}",
        f"logger.artifact_location={tmp}/art",
        f"paths.output_dir={tmp}/out/{study}" + "/${now:%H-%M-%S-%f}",
        "callbacks.progress_bar=false",
        "timing=false",
        "trainer.log_every_n_steps=1",
        "trainer.max_epochs=2",
        # the comparison a sweep makes when it ends: checked on the "basic" study only
        f"hydra.sweeper.compare={'true' if study == 'basic' else 'false'}",
        *extra,
    ]


def _env() -> dict[str, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("OSCFLOW_CONFIG_DIR", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _trials(study: str, storage: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=study, storage=storage).get_trials()


def _mlflow(tmp: Path) -> Any:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp}/mlflow.db")
    exp = client.get_experiment_by_name("juno-surrogate")
    return client, client.search_runs([exp.experiment_id], max_results=1000)


def test_sweep_of_n_trials_has_n_child_runs_under_one_parent_and_resumes(
    repo: Path, tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path}/optuna.db"
    run_cmd(repo, *_sweep_cmd(tmp_path, "basic", storage))
    trials = _trials("basic", storage)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    client, runs = _mlflow(tmp_path)
    parents = [r for r in runs if r.data.tags.get("oscflow.sweep") == "parent"]
    assert len(parents) == 1
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 3
    assert sorted(int(r.data.tags["oscflow.sweep.trial"]) for r in children) == [0, 1, 2]
    for child in children:
        assert child.info.status == "FINISHED"
        assert "max_rel_dev_peak1" in child.data.metrics
        assert len(client.get_metric_history(child.info.run_id, "val_loss")) == 2
    assert parent.data.metrics["trials_complete"] == 3
    assert parent.data.params["sweep.study_name"] == "basic"
    best = min(trials, key=lambda t: t.value)
    assert parent.data.tags["sweep.best_trial"] == str(best.number)
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {
        "search_space.json",
        "trials.json",
        "optimization_history.png",
        "param_importances.png",
    } <= names
    # the sweep compared its trials in juno-surrogate-comparisons and links to that run
    comparison = client.get_run(parent.data.tags["oscflow.comparison.run"])
    assert comparison.info.status == "FINISHED"
    assert comparison.data.tags["oscflow.comparison.sweep"] == parent.info.run_id
    assert set(comparison.data.tags["oscflow.comparison.runs"].split(",")) == {
        c.info.run_id for c in children
    }
    assert "comparison_report.png" in {
        a.path for a in client.list_artifacts(comparison.info.run_id)
    }
    assert comparison.info.run_id in parent.data.tags["mlflow.note.content"]

    # Re-running with a larger n_trials resumes the study: the finished trials are kept as they
    # were and only the missing one runs.
    first = {t.number: t.params for t in trials}
    run_cmd(repo, *_sweep_cmd(tmp_path, "basic", storage, "hydra.sweeper.n_trials=4"))
    resumed = _trials("basic", storage)
    assert [t.state for t in resumed] == [TrialState.COMPLETE] * 4
    assert {t.number: t.params for t in resumed if t.number in first} == first


def test_aggressive_pruner_prunes_before_the_last_epoch(repo: Path, tmp_path: Path) -> None:
    """ThresholdPruner(upper=0): any positive val_loss is pruned at its first report."""
    storage = f"sqlite:///{tmp_path}/optuna.db"
    run_cmd(
        repo,
        *_sweep_cmd(
            tmp_path,
            "pruned",
            storage,
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.pruner.name=threshold",
            "+hydra.sweeper.pruner.upper=0.0",
            "trainer.max_epochs=4",
        ),
    )
    trials = _trials("pruned", storage)
    assert [t.state for t in trials] == [TrialState.PRUNED] * 2
    assert all(len(t.intermediate_values) < 4 for t in trials)
    _, runs = _mlflow(tmp_path)
    children = [r for r in runs if "oscflow.sweep.trial" in r.data.tags]
    assert len(children) == 2
    for child in children:
        assert child.data.tags["oscflow.pruned"] == "true"
        assert child.info.status == "KILLED"  # stopped early, not FAILED


def test_multi_objective_sweep_keeps_a_pareto_front(repo: Path, tmp_path: Path) -> None:
    """Accuracy and latency together: two directions, no pruning, a Pareto-front plot."""
    storage = f"sqlite:///{tmp_path}/optuna.db"
    run_cmd(
        repo,
        *_sweep_cmd(
            tmp_path,
            "pareto",
            storage,
            "hydra.sweeper.n_trials=3",
            "timing=true",
            "hydra.sweeper.objectives=[max_rel_dev_peak1,latency_single_s]",
            "hydra.sweeper.directions=[minimize,minimize]",
        ),
    )
    study = optuna.load_study(study_name="pareto", storage=storage)
    assert len(study.directions) == 2
    assert all(t.state == TrialState.COMPLETE and len(t.values) == 2 for t in study.trials)
    assert 1 <= len(study.best_trials) <= 3
    client, runs = _mlflow(tmp_path)
    parent = next(r for r in runs if r.data.tags.get("oscflow.sweep") == "parent")
    assert "pareto_front.png" in {a.path for a in client.list_artifacts(parent.info.run_id)}


def test_two_processes_on_one_postgresql_study(repo: Path, tmp_path: Path) -> None:
    """Both processes join one study; the MLflow store (SQLite here) is created beforehand, as
    a shared tracking server's would be."""
    study = f"oscflow-test-{uuid.uuid4().hex[:8]}"
    procs = [
        subprocess.Popen(
            _sweep_cmd(
                tmp_path,
                study,
                POSTGRES,
                "hydra.sweeper.n_trials=4",
                f"hydra.sweep.dir={tmp_path}/multirun/{i}",
            ),
            cwd=repo,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for i, out in enumerate(outs):
        (tmp_path / f"sweep{i}.log").write_text(out)
    errors = [out[out.find("Traceback") :][:3000] for out in outs if "Traceback" in out]
    assert [p.returncode for p in procs] == [0, 0], errors
    trials = _trials(study, POSTGRES)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 4
    assert len({t.number for t in complete}) == 4
    assert all("surplus" in t.system_attrs or t.state == TrialState.COMPLETE for t in trials)
    _, runs = _mlflow(tmp_path)
    assert len([r for r in runs if r.data.tags.get("oscflow.sweep") == "parent"]) == 2


def test_killed_worker_trial_is_retried_and_the_study_completes(repo: Path, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path}/optuna.db"
    cmd = _sweep_cmd(
        tmp_path, "killed", storage, "hydra.sweeper.n_trials=2", "trainer.max_epochs=200"
    )
    proc = subprocess.Popen(
        cmd,
        cwd=repo,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    running = []
    while time.time() < deadline and not running:
        time.sleep(0.5)
        try:
            running = [
                t
                for t in _trials("killed", storage)
                if t.state == TrialState.RUNNING and t.intermediate_values
            ]
        except (KeyError, optuna.exceptions.OptunaError, sqlalchemy.exc.SQLAlchemyError):  # not yet
            running = []
    assert running, "no trial started reporting within 2 minutes"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(4)  # > grace_period: the trial's heartbeat is stale now
    run_cmd(
        repo,
        *_sweep_cmd(
            tmp_path, "killed", storage, "hydra.sweeper.n_trials=2", "trainer.max_epochs=2"
        ),
    )
    trials = _trials("killed", storage)
    killed = next(t for t in trials if t.number == running[0].number)
    assert killed.state == TrialState.FAIL
    with warnings.catch_warnings():  # optuna marks retried_trial_number experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retried = [
            t
            for t in trials
            if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed.number
        ]
    assert len(retried) == 1
    assert retried[0].state == TrialState.COMPLETE
    assert retried[0].params == killed.params
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2


def test_a_sweep_whose_trials_keep_failing_stops(repo: Path, tmp_path: Path) -> None:
    """A config error that only shows in the job (an optimiser keyword AdamW lacks) fails
    each trial; after max_failures the sweep stops with the reason instead of looping."""
    storage = f"sqlite:///{tmp_path}/optuna.db"
    cmd = _sweep_cmd(
        tmp_path, "broken", storage, "+optim.nesterov=true", "hydra.sweeper.n_trials=5"
    )
    proc = subprocess.run(
        cmd, cwd=repo, env=_env(), capture_output=True, text=True, check=False, timeout=300
    )
    assert proc.returncode != 0
    assert "3 trials failed (max_failures=3)" in proc.stdout + proc.stderr
    assert "nesterov" in proc.stdout + proc.stderr
    assert [t.state for t in _trials("broken", storage)] == [TrialState.FAIL] * 3


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "+hydra.sweeper.params.optim.weight_decay={type: beta, low: 0, high: 1}",
            "unknown distribution type 'beta'",
        ),
        (
            "+hydra.sweeper.params.optim.lr={type: float, low: 0.1, high: 0.01}",
            "low = 0.1 > high = 0.01",
        ),
        (
            "+hydra.sweeper.params.optim.momentum={type: float, low: 0.1, high: 0.9}",
            "the config has no key 'optim.momentum'",
        ),
    ],
)
def test_malformed_search_space_fails_before_any_trial(
    repo: Path, tmp_path: Path, override: str, message: str
) -> None:
    storage = f"sqlite:///{tmp_path}/optuna.db"
    proc = subprocess.run(
        _sweep_cmd(tmp_path, "bad", storage, override),
        cwd=repo,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (tmp_path / "optuna.db").exists() or not optuna.get_all_study_names(storage)
