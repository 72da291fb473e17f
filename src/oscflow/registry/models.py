"""Surrogates as MLflow pyfunc models, registered as ``<experiment>-spectrum`` versions.

``load_surrogate("models:/juno-spectrum@champion")`` returns the ``FastSurrogate`` (no pandas
per call); ``mlflow.pyfunc.load_model(uri).predict(df)`` stays available for generic use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import ColSpec, Schema, TensorSpec

from ..surrogate.model import FastSurrogate, SpectrumSurrogate

ARTIFACT = "surrogate"


def registered_name(experiment: str) -> str:
    return f"{experiment}-spectrum"


class SurrogatePyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: a DataFrame with one column per input → counts (N, n_bins)."""

    def load_context(self, context: Any) -> None:
        self.surrogate = FastSurrogate(SpectrumSurrogate.load(context.artifacts[ARTIFACT]))

    def predict(self, context, model_input: pd.DataFrame, params=None):  # MLflow reads the hints
        del context, params
        if isinstance(model_input, pd.DataFrame):
            missing = [k for k in self.surrogate.inputs if k not in model_input.columns]
            if missing:
                msg = f"missing input columns {missing}; this model takes {list(self.surrogate.inputs)}"
                raise ValueError(msg)
            values = model_input[list(self.surrogate.inputs)].to_numpy(dtype=np.float64)
        else:
            values = np.asarray(model_input, dtype=np.float64)
        return self.surrogate.predict(values)


def signature(model: SpectrumSurrogate) -> ModelSignature:
    inputs = Schema([ColSpec("double", name) for name in model.spec.inputs])
    outputs = Schema([TensorSpec(np.dtype(np.float64), (-1, model.spec.n_out))])
    return ModelSignature(inputs=inputs, outputs=outputs)


def log_and_register(
    model: SpectrumSurrogate,
    run_id: str,
    workdir: str | os.PathLike[str],
    tags: Mapping[str, str],
    register: bool = True,
) -> dict[str, Any]:
    """Log the model to the run (signature, input example) and register a new version with
    ``tags`` on it. Returns {"model_uri", "name", "version"}."""
    path = model.save(Path(workdir) / "surrogate.pt")
    centre = {
        k: [(lo + hi) / 2] for k, (lo, hi) in zip(model.spec.inputs, model.spec.ranges, strict=True)
    }
    example = pd.DataFrame(centre)
    name = registered_name(model.spec.experiment)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=SurrogatePyfunc(),
            artifacts={ARTIFACT: str(path)},
            signature=signature(model),
            input_example=example,
            registered_model_name=name if register else None,
            pip_requirements=[
                f"torch=={torch.__version__.split('+')[0]}",
                f"mlflow=={mlflow.__version__}",
                "numpy",
                "pandas",
                "oscflow",
            ],
        )
    out: dict[str, Any] = {"model_uri": info.model_uri, "name": name, "version": None}
    if register:
        version = str(info.registered_model_version)
        client = MlflowClient()
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, str(value))
        out["version"] = version
    return out


def load_surrogate(uri: str) -> FastSurrogate:
    """The fast inference object of a logged or registered surrogate (``models:/name@alias``,
    ``models:/name/3``, ``runs:/<id>/model``)."""
    loaded = mlflow.pyfunc.load_model(uri)
    python_model = loaded.unwrap_python_model()
    if not isinstance(python_model, SurrogatePyfunc):
        msg = f"{uri} is not an oscflow surrogate (it wraps {type(python_model).__name__})"
        raise TypeError(msg)
    return python_model.surrogate
