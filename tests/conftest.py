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
