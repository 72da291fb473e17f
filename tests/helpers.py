"""Shared test constants."""

# PDG 2022 normal ordering (R.L. Workman et al., PTEP 2022, 083C01).
NOMINAL = {"sin2_th12": 0.307, "sin2_th13": 0.0220, "dm2_21": 7.53e-5, "dm2_32": 2.453e-3}

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]

# A tiny JUNO dataset (seconds to build) for tests that train or load a surrogate.
TINY_DATA: dict[str, Any] = {
    "name": "ttrain",
    "simulate": {"n_pairs": 40000, "seed": 21, "chunk": 20000},
    "spectra": {
        "method": "matrix",
        "energy": "prompt",
        "sampler": "lhs",
        "seed": 22,
        "inputs": ["sin2_th12", "sin2_th13", "dm2_21", "dm2_32"],
        "splits": {"train": 512, "val": 64, "test": 64},
        "chunk": 256,
        "dtype": "float32",
    },
    "loader": {"batch_size": 64, "eval_batch_size": 256, "num_workers": 0},
}

# A cheap exact fit configuration: E_ν binning (quadrature, no MC), vacuum, 70 bins.
CHEAP_FIT = [
    "predictor=exact",
    "energy=neutrino",
    "binning.emin=1.8",
    "binning.emax=8.8",
    "binning.nbins=70",
    "experiment.oscillation.matter=false",
    "orderings=false",
    "record=false",
    "plots=false",
]


def run(cwd: Path, *cmd: str) -> str:
    """Run a command with this interpreter's bin directory first on PATH; fail loudly."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("OSCFLOW_CONFIG_DIR", None)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def inverted_twin(data_name: str) -> str:
    """``conf/data/<data_name>_inverted.yaml``: the dataset in the inverted ordering, from the
    same MC pairs (as conf/data/demo_inverted.yaml is demo's)."""
    return (
        "# @package _global_\n"
        f"defaults:\n  - {data_name}@data\n  - _self_\n"
        f"data:\n  name: {data_name}_inverted\n  pairs_from: {data_name}\n"
        "experiment:\n  oscillation:\n    ordering: inverted\n"
    )


def make_clone(
    dest: Path,
    data_name: str,
    data_cfg: dict[str, Any],
    dayabay_data: str = "dayabay_demo",
    jsns2_data: str = "jsns2_demo",
) -> Path:
    """A new git repository at ``dest`` with this checkout's files (tracked and not ignored),
    a dataset config ``conf/data/<data_name>.yaml``, its inverted-ordering twin, and
    params.yaml selecting it (JUNO stages: ``dvc repro spectra``; the stages ``datasets@dayabay``
    and ``datasets@jsns2`` build ``dayabay_data`` and ``jsns2_data``)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file() and not src.is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    (dest / f"conf/data/{data_name}.yaml").write_text(yaml.safe_dump(data_cfg))
    (dest / f"conf/data/{data_name}_inverted.yaml").write_text(inverted_twin(data_name))
    datasets = {
        "dayabay": {"experiment": "dayabay", "data": dayabay_data},
        "jsns2": {"experiment": "jsns2", "data": jsns2_data},
    }
    (dest / "params.yaml").write_text(yaml.safe_dump({"data": data_name, "datasets": datasets}))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    run(dest, "git", "init", "-q")
    run(dest, "git", "add", "-A")
    run(dest, *git, "commit", "-qm", "clone")
    return dest


_MLFLOW_TEMPLATE: list[Path] = []


def mlflow_store(directory: Path) -> str:
    """``sqlite:///<directory>/mlflow.db``: an empty MLflow store, copied from one migrated in
    this process (creating one runs MLflow's migrations, ~4 s of CPU). An existing store is
    kept. The Default experiment's artifacts go to ``<directory>/mlruns/0``, as if MLflow had
    created the store there."""
    import sqlite3
    import tempfile

    db = Path(directory) / "mlflow.db"
    if not db.exists():
        if not _MLFLOW_TEMPLATE:
            from mlflow.tracking import MlflowClient

            template = Path(tempfile.mkdtemp(prefix="oscflow-mlflow-template-")) / "mlflow.db"
            MlflowClient(f"sqlite:///{template}").search_experiments()
            _MLFLOW_TEMPLATE.append(template)
        db.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_MLFLOW_TEMPLATE[0], db)
        with contextlib.closing(sqlite3.connect(db)) as conn, conn:
            conn.execute(
                "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                (str(db.parent / "mlruns" / "0"),),
            )
    return f"sqlite:///{db}"
