"""Shared fixtures: the JUNO experiment from the repository config, and a small MC sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from oscflow.config import load
from oscflow.experiments import load_experiment
from oscflow.experiments.juno import JunoExperiment
from oscflow.physics.predictors import MCPairs

REPO = Path(__file__).resolve().parents[1]


# Fixtures that train or build something: a test that uses one is `slow` whatever its own
# marks say, so `make test-fast` (-m "not slow") never pays for them.
EXPENSIVE_FIXTURES = {"registered_surrogate"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if EXPENSIVE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def juno() -> JunoExperiment:
    cfg = load("predict", [])
    exp = load_experiment(cfg.experiment)
    assert isinstance(exp, JunoExperiment)
    return exp


@pytest.fixture(scope="session")
def juno_vacuum() -> JunoExperiment:
    exp = load_experiment(load("predict", ["experiment.oscillation.matter=false"]).experiment)
    assert isinstance(exp, JunoExperiment)
    return exp


@pytest.fixture(scope="session")
def pairs(juno: JunoExperiment) -> MCPairs:
    return juno.simulate_pairs(300_000, seed=7)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def registered_surrogate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A tiny surrogate trained on the tiny dataset and registered as ``juno-spectrum`` version 1
    in a session-private MLflow store: {"root", "tracking_uri", "artifacts", "model_uri",
    "name", "version", "run_id"}. Accuracy is poor (a few epochs, 32×32): for plumbing tests."""
    import contextlib
    import io
    import json

    from helpers import TINY_DATA, make_clone
    from helpers import run as run_cmd
    from oscflow.cli import main

    root = make_clone(tmp_path_factory.mktemp("surrogate_repo"), "ttrain", TINY_DATA)
    run_cmd(root, "dvc", "repro", "spectra")
    store = tmp_path_factory.mktemp("surrogate_mlflow")
    uri = f"sqlite:///{store}/mlflow.db"
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
                f"logger.artifact_location={store}/artifacts",
                f"paths.output_dir={store}/out",
                "model.hidden=[32,32]",
                "trainer.max_epochs=3",
                "trainer.log_every_n_steps=1",
                "callbacks.progress_bar=false",
            ]
        )
    assert code == 0, out.getvalue()
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    return {
        "root": str(root),
        "tracking_uri": uri,
        "artifacts": f"{store}/artifacts",
        "model_uri": f"models:/{result['registered_model']}/{result['version']}",
        "name": result["registered_model"],
        "version": str(result["version"]),
        "run_id": result["run_id"],
    }
