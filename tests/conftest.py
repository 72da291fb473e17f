"""Shared fixtures: the JUNO experiment from the repository config, and a small MC sample."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

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


GROUPING_FIX = "Fix: pip install 'pytest<9.2' (pyproject's dev extra pins it)"


def pytest_configure(config: pytest.Config) -> None:
    """pytest 9.2's structured node ids make pytest-xdist ≤ 3.8's ``--dist loadgroup`` ignore
    the xdist_group marks (pytest-dev/pytest-xdist#1386): the tests of one stack, dataset or
    trained fixture would run on several workers, out of order. Refuse such a run."""
    import xdist

    def version(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", v)[:2])

    if config.getoption("dist", "no") == "loadgroup" and (
        version(pytest.__version__) >= (9, 2) and version(xdist.__version__) <= (3, 8)
    ):
        msg = (
            f"pytest {pytest.__version__} with pytest-xdist {xdist.__version__} ignores "
            f"xdist_group marks under --dist loadgroup. {GROUPING_FIX}"
        )
        raise pytest.UsageError(msg)


@pytest.hookimpl(trylast=True)  # after pytest-xdist's own hook has tagged the node ids
def pytest_collection_finish(session: pytest.Session) -> None:
    """The same check on each xdist worker, whatever the versions: a grouped test's node id
    carries ``@<group>``, or the run stops (the worker cannot print; the run fails)."""
    if not getattr(session.config.option, "loadgroup", False):  # set on xdist workers only
        return
    lost = [
        i.nodeid
        for i in session.items
        if i.get_closest_marker("xdist_group") and "@" not in i.nodeid
    ]
    if lost:
        msg = f"--dist loadgroup ignores xdist_group ({lost[0]} has no @group). {GROUPING_FIX}"
        raise pytest.UsageError(msg)


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
    in a session-private MLflow store, and its inverted-ordering partner (same network, the
    dataset's ``_inverted`` twin) as version 2, not yet paired: {"root", "tracking_uri",
    "artifacts", "model_uri", "name", "version", "run_id", "io_version", "io_run_id"}. Accuracy
    is poor (a few epochs, 32×32): for plumbing tests."""
    from helpers import TINY_DATA, make_clone, mlflow_store
    from helpers import run as run_cmd

    root = make_clone(tmp_path_factory.mktemp("surrogate_repo"), "ttrain", TINY_DATA)
    run_cmd(root, "dvc", "repro", "spectra")
    run_cmd(root, "oscflow", "spectra", "data=ttrain_inverted")
    store = tmp_path_factory.mktemp("surrogate_mlflow")
    uri = mlflow_store(store)
    no, io = (_train_tiny(root, store, uri, data) for data in ("ttrain", "ttrain_inverted"))
    return {
        "root": str(root),
        "tracking_uri": uri,
        "artifacts": f"{store}/artifacts",
        "model_uri": f"models:/{no['registered_model']}/{no['version']}",
        "name": no["registered_model"],
        "version": str(no["version"]),
        "run_id": no["run_id"],
        "io_version": str(io["version"]),
        "io_run_id": io["run_id"],
    }


@pytest.fixture
def surrogate(registered_surrogate: dict[str, str]) -> dict[str, str]:
    """``registered_surrogate`` with versions 1 and 2 not paired, whatever an earlier test of
    this worker did (test_nmo and the platform's local stack pair them in the session store):
    a test that asks for the other ordering must not find a partner it did not register."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(registered_surrogate["tracking_uri"])
    name = registered_surrogate["name"]
    for v in (registered_surrogate["version"], registered_surrogate["io_version"]):
        for key in list(client.get_model_version(name, v).tags):
            if key.startswith("oscflow.pair."):
                client.delete_model_version_tag(name, v, key)
    return registered_surrogate


def _train_tiny(root: Path, store: Path, uri: str, data: str) -> dict[str, Any]:
    import contextlib
    import io
    import json

    from oscflow.cli import main

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setenv("OSCFLOW_CONFIG_DIR", str(root / "conf"))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        code = main(
            [
                "train",
                "--json",
                f"paths.root_dir={root}",
                f"data={data}",
                f"logger.tracking_uri={uri}",
                f"logger.artifact_location={store}/artifacts",
                f"paths.output_dir={store}/out-{data}",
                "model.hidden=[32,32]",
                "trainer.max_epochs=3",
                "trainer.log_every_n_steps=1",
                "callbacks.progress_bar=false",
            ]
        )
    assert code == 0, out.getvalue()
    return dict(json.loads(out.getvalue().strip().splitlines()[-1]))
