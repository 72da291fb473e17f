"""Training runs of four surrogate architectures with known metrics, written straight into an
MLflow store the way ``oscflow train`` records them (run names, tags, summary metrics at step
0, ``predictions_sample.npz`` with exact spectra): what ``oscflow compare`` reads, for
tests/test_compare.py and the browser test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from oscflow.tracking import tags

EDGES = np.linspace(0.8, 8.8, 41)  # 40 bins
CENTRES = 0.5 * (EDGES[1:] + EDGES[:-1])
INPUTS = ["sin2_th12", "sin2_th13", "dm2_21", "dm2_32"]
PARAMS = ["sin2_th12", "sin2_th13", "dm2_21", "dm2_32"]

# Known metrics of four architectures. Accuracy (p99) vs parameters: d is dominated by b
# (more parameters, worse accuracy); vs latency: b is dominated by a (slower, worse) and d has
# no latency (missing, on no front).
RUNS: dict[str, dict[str, Any]] = {
    "seed_mlp-400x400-silu-323k": {
        "architecture": "seed_mlp",
        "metrics": {
            "n_parameters": 322800.0,
            "p99_rel_dev_peak1": 4.0e-4,
            "max_rel_dev_peak1": 2.0e-3,
            "artefact_rms_median": 7.0e-5,
            "fit_bias_max_sigma": 0.085,
            "latency_single_s": 1.0e-3,
            "throughput_per_s": 1.0e6,
            "train_seconds": 180.0,
        },
        "bias": [0.02, 0.085, 0.01, 0.05],
        "ripple": 1e-4,
    },
    "resmlp-256x4-150k": {
        "architecture": "resmlp",
        "metrics": {
            "n_parameters": 150000.0,
            "p99_rel_dev_peak1": 8.0e-4,
            "max_rel_dev_peak1": 4.0e-3,
            "artefact_rms_median": 1.0e-4,
            "fit_bias_max_sigma": 0.07,
            "latency_single_s": 1.2e-3,
            "throughput_per_s": 8.0e5,
            "train_seconds": 240.0,
        },
        "bias": [0.07, 0.03, 0.02, 0.04],
        "ripple": 3e-4,
    },
    "pca_mlp-64-30k": {
        "architecture": "pca_mlp",
        "metrics": {
            "n_parameters": 30000.0,
            "p99_rel_dev_peak1": 3.0e-3,
            "max_rel_dev_peak1": 9.0e-3,
            "artefact_rms_median": 5.0e-4,
            "fit_bias_max_sigma": 0.3,
            "latency_single_s": 2.0e-4,
            "throughput_per_s": 3.0e6,
            "train_seconds": 60.0,
        },
        "bias": [0.3, 0.1, 0.05, 0.2],
        "ripple": 2e-3,
    },
    # An older run: no fit bias, no speed metrics, no residual artifact.
    "seed_mlp-200x200-relu-45k": {
        "architecture": "seed_mlp",
        "metrics": {
            "n_parameters": 200000.0,
            "p99_rel_dev_peak1": 1.0e-3,
            "max_rel_dev_peak1": 6.0e-3,
            "artefact_rms_median": 2.0e-4,
            "train_seconds": 90.0,
        },
        "bias": None,
        "ripple": None,
    },
}
NAMES = list(RUNS)
MD5 = "0123456789abcdef0123456789abcdef.dir"


def sample_truth(points: np.ndarray) -> np.ndarray:
    """Smooth positive 'spectra' (one per point); the first and last bins below 1 % of the
    peak (they carry no residual)."""
    shape = np.exp(-0.5 * ((CENTRES - 3.5) / 2.5) ** 2)
    shape[[0, -1]] = 1e-4
    return 1000.0 * (1.0 + points[:, :1]) * shape[None, :]


def sample_points() -> np.ndarray:
    rng = np.random.default_rng(5)
    return np.column_stack(
        [
            rng.uniform(0.27, 0.34, 8),
            rng.uniform(0.018, 0.026, 8),
            rng.uniform(7.0e-5, 8.0e-5, 8),
            rng.uniform(2.35e-3, 2.55e-3, 8),
        ]
    )


def log_sample(client: Any, run_id: str, ripple: float, directory: Path) -> None:
    points = sample_points()
    truth = sample_truth(points)
    predictions = truth * (1.0 + ripple * np.sin(3 * CENTRES))[None, :]
    path = directory / run_id / "predictions_sample.npz"
    path.parent.mkdir(parents=True)
    np.savez(
        path,
        params=points,
        predictions=predictions,
        truth=truth,
        bin_edges=EDGES,
        inputs=np.asarray(INPUTS),
        energy=np.asarray("prompt"),
    )
    client.log_artifact(run_id, str(path))


def training_run(
    client: Any, exp: str, name: str, spec: dict[str, Any], tmp: Path, **extra: str
) -> str:
    run_tags = {
        tags.ARCHITECTURE: spec["architecture"],
        tags.N_PARAMETERS: str(int(spec["metrics"]["n_parameters"])),
        tags.EXPERIMENT: "juno",
        tags.DATASET_NAME: "demo",
        tags.DATASET_SPECTRA_MD5: MD5,
        **extra,
    }
    run_id = client.create_run(exp, run_name=name, tags=run_tags).info.run_id
    for key, value in spec["metrics"].items():
        client.log_metric(run_id, key, value, step=0)
    for param, value in zip(PARAMS, spec["bias"] or [], strict=False):
        client.log_metric(run_id, f"fit_bias_max_sigma.{param}", value, step=0)
    if spec["ripple"] is not None:
        log_sample(client, run_id, spec["ripple"], tmp / "samples")
    client.set_terminated(run_id, "FINISHED")
    return run_id
