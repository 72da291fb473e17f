"""The training job's pieces on their own: the MLflow run context (``tracking.training_run``:
create or resume, end FINISHED / FAILED / KILLED), Ctrl-C during a Lightning fit, and that an
architecture registered from outside the package trains, is named and registered through
``oscflow train`` with no edit of ``train.py``."""

from __future__ import annotations

import contextlib
import io
import json
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from helpers import mlflow_store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite MLflow store for the context tests (each test makes its own runs)."""
    return tmp_path_factory.mktemp("training_run")


def _cfg(store: Path) -> Any:
    from oscflow.config import load

    return load(
        "train",
        [
            f"logger.tracking_uri={mlflow_store(store)}",
            f"logger.artifact_location={store}/artifacts",
        ],
    )


def _run(store: Path, run_id: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{store}/mlflow.db").get_run(run_id)


TAGS = {"oscflow.architecture": "seed_mlp", "oscflow.experiment": "juno"}


@pytest.mark.slow  # an MLflow SQLite store: seconds to create
def test_a_training_run_is_created_tagged_and_finished(store: Path) -> None:
    from oscflow.tracking.training_run import training_run

    with training_run(_cfg(store), "arch-1x1-0k", TAGS, {"a": {"b": 1}}) as run:
        assert not run.resumed
        assert _run(store, run.run_id).info.status == "RUNNING"
    done = _run(store, run.run_id)
    assert done.info.status == "FINISHED"
    assert done.info.run_name == "arch-1x1-0k"
    assert done.data.params == {"a.b": "1"}
    assert TAGS.items() <= done.data.tags.items()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("error", "status", "tags"),
    [
        (ValueError("boom"), "FAILED", {"oscflow.failure_reason": "ValueError: boom"}),
        (KeyboardInterrupt(), "KILLED", {"oscflow.failure_reason": "interrupted"}),
        (
            "pruned",
            "KILLED",
            {"oscflow.pruned": "true", "oscflow.pruned_reason": "trial 3 pruned at epoch 1"},
        ),
    ],
)
def test_a_stopped_training_run_ends_with_its_reason(store: Path, error, status, tags) -> None:
    import optuna

    from oscflow.tracking.training_run import training_run

    if error == "pruned":
        error = optuna.TrialPruned("trial 3 pruned at epoch 1")
    with pytest.raises(type(error)), training_run(_cfg(store), "x", TAGS, {}) as run:
        raise error
    ended = _run(store, run.run_id)
    assert ended.info.status == status
    assert tags.items() <= ended.data.tags.items()
    if status == "KILLED" and "oscflow.pruned" in tags:
        assert "oscflow.failure_reason" not in ended.data.tags


@pytest.mark.slow  # an MLflow SQLite store: seconds to create
def test_resuming_continues_the_run_without_logging_its_params_again(store: Path) -> None:
    from oscflow.tracking.training_run import training_run

    cfg = _cfg(store)
    with training_run(cfg, "first", TAGS, {"max_epochs": 2}) as first:
        pass
    retagged = {**TAGS, "oscflow.hydra_overrides": "trainer.max_epochs=4"}
    # a changed param would be refused by MLflow if it were logged again
    with training_run(cfg, "ignored", retagged, {"max_epochs": 4}, first.run_id) as again:
        assert again.resumed
        assert again.run_id == first.run_id
        assert _run(store, first.run_id).info.status == "RUNNING"
    run = _run(store, first.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "first"
    assert run.data.params == {"max_epochs": "2"}
    assert run.data.tags["oscflow.hydra_overrides"] == "trainer.max_epochs=4"


def test_ctrl_c_during_a_fit_is_a_keyboard_interrupt() -> None:
    """Lightning answers Ctrl-C with a graceful shutdown and sys.exit(1); the fit step turns
    that back into KeyboardInterrupt, so the run ends KILLED, not FAILED."""
    import lightning as L

    from oscflow.surrogate.trainer import fit

    class Interrupted(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(1, 1)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            del batch, batch_idx
            raise KeyboardInterrupt

        def train_dataloader(self) -> Any:
            return torch.utils.data.DataLoader(torch.zeros(4, 1), batch_size=2)

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(KeyboardInterrupt):
            fit(trainer, Interrupted(), None)
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores SIGINT after a Ctrl-C


# --- a new architecture, registered from here -----------------------------------------------

STAND_IN = "test_stand_in"


class StandIn(nn.Module):
    """inputs → tanh(width) → outputs, not an nn.Sequential (the generic inference path)."""

    def __init__(self, n_in: int, n_out: int, width: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(n_in, width)
        self.out = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.hidden(x)))


@pytest.fixture
def stand_in():
    from oscflow.surrogate import architectures

    @architectures.register(STAND_IN, shape=lambda options: f"t{options['hidden'][0]}")
    def build(n_in: int, n_out: int, options: Any, fit_outputs: Any = None) -> nn.Module:
        del fit_outputs
        return StandIn(n_in, n_out, int(options["hidden"][0]))

    yield
    del architectures.ARCHITECTURES[STAND_IN]


@pytest.mark.usefixtures("stand_in")
def test_a_new_architecture_trains_and_registers_with_no_edit_of_train_py(
    registered_surrogate: dict[str, str], tmp_path: Path
) -> None:
    """One epoch of the stand-in through `oscflow train` on the tiny dataset: its run carries
    the name its registration gives, and the registered version loads and reproduces the
    logged predictions."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from oscflow.cli import main
    from oscflow.registry import load_surrogate

    root = Path(registered_surrogate["root"])
    uri = mlflow_store(tmp_path)
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setenv("OSCFLOW_CONFIG_DIR", str(root / "conf"))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        code = main(
            [
                "train",
                "--json",
                f"paths.root_dir={root}",
                "data=ttrain",
                f"logger.tracking_uri={uri}",
                f"logger.artifact_location={tmp_path}/artifacts",
                f"paths.output_dir={tmp_path}/out",
                f"model.name={STAND_IN}",
                "model.hidden=[16]",
                "trainer.max_epochs=1",
                "trainer.log_every_n_steps=1",
                "callbacks.progress_bar=false",
            ]
        )
    assert code == 0, out.getvalue()
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    client = MlflowClient(uri)
    run = client.get_run(result["run_id"])
    n_params = 4 * 16 + 16 + 16 * 400 + 400
    assert run.info.status == "FINISHED"
    assert run.info.run_name == f"{STAND_IN}-t16-{n_params / 1000:.0f}k"
    assert run.data.tags["oscflow.architecture"] == STAND_IN
    assert run.data.tags["oscflow.n_parameters"] == str(n_params)
    assert run.data.metrics["n_parameters"] == n_params
    assert result["registered_model"] == "juno-spectrum"
    version = client.get_model_version("juno-spectrum", result["version"])
    assert version.tags["oscflow.architecture"] == STAND_IN
    assert version.tags["oscflow.training_run"] == run.info.run_id
    mlflow.set_tracking_uri(uri)
    fast = load_surrogate(f"models:/juno-spectrum/{result['version']}")
    sample = np.load(
        mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path="predictions_sample.npz"
        )
    )
    np.testing.assert_allclose(fast.predict(sample["params"]), sample["predictions"], rtol=1e-6)
