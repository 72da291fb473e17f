"""Surrogates as MLflow pyfunc models, registered as ``<experiment>-spectrum`` versions.

``load_surrogate("models:/juno-spectrum@champion")`` returns the ``FastSurrogate`` (no pandas
per call); ``mlflow.pyfunc.load_model(uri).predict(df)`` stays available for generic use.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types.schema import ColSpec, Schema, TensorSpec

from ..errors import ConfigError, OscflowError
from ..surrogate.model import FastSurrogate, SpectrumSurrogate
from ..tracking import tags as tag_names

ARTIFACT = "surrogate"
MLMODEL = "MLmodel"


class ModelArtifactError(OscflowError):
    """A logged model's files are missing or unreadable: names the model, the file, the fix."""

    def __init__(self, uri: str, file: str, detail: str) -> None:
        self.uri, self.file = uri, file
        super().__init__(
            f"cannot load {uri}: its artifact {file} is missing or corrupt ({detail}). Fix: "
            "re-log and re-register the model (oscflow train, or mlflow.pyfunc.log_model with "
            "registered_model_name), or check the artifact store it was logged to (files "
            "changed or lost, an interrupted upload)"
        )


def registered_name(experiment: str) -> str:
    return f"{experiment}-spectrum"


class SurrogatePyfunc(PythonModel):
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
        else:  # the hint is MLflow's input schema; a caller may still hand in an array
            values = np.asarray(model_input, dtype=np.float64)  # type: ignore[unreachable]
        return self.surrogate.predict(values)


def signature(model: SpectrumSurrogate) -> ModelSignature:
    inputs = Schema([ColSpec("double", name) for name in model.spec.inputs])
    outputs = Schema([TensorSpec(np.dtype(np.float64), (-1, model.spec.n_out))])
    return ModelSignature(inputs=inputs, outputs=outputs)


# Training metrics copied onto each version (``oscflow.metric.<name>``): what the promotion
# gates and the MLflow UI's version table read without opening the training run.
VERSION_METRICS = (
    "max_rel_dev_peak1",
    "p99_rel_dev_peak1",
    "max_rel_dev_all",
    "artefact_rms_median",
    "fit_bias_max_sigma",
)


def version_tags(
    run_id: str, run_tags: Mapping[str, str], metrics: Mapping[str, float]
) -> dict[str, str]:
    """The lineage tags of a version registered from training run ``run_id`` (whose tags are
    ``run_tags``, ``tracking.training_run.training_tags``): the run, the dataset's DVC md5s and
    name, the config hash, the git commit, the architecture, the experiment, and the
    ``VERSION_METRICS`` of ``metrics``."""
    return {
        tag_names.TRAINING_RUN: run_id,
        tag_names.DATASET_SPECTRA_MD5: run_tags[tag_names.DATASET_SPECTRA_MD5],
        tag_names.DATASET_PAIRS_MD5: run_tags[tag_names.DATASET_PAIRS_MD5],
        tag_names.CONFIG_HASH: run_tags[tag_names.CONFIG_HASH],
        tag_names.GIT_COMMIT: run_tags[tag_names.MLFLOW_GIT_COMMIT],
        tag_names.ARCHITECTURE: run_tags[tag_names.ARCHITECTURE],
        tag_names.EXPERIMENT: run_tags[tag_names.EXPERIMENT],
        tag_names.DATASET_NAME: run_tags[tag_names.DATASET_NAME],
        **(
            {tag_names.ORDERING: run_tags[tag_names.ORDERING]}
            if tag_names.ORDERING in run_tags
            else {}
        ),
        **{f"{tag_names.METRIC_PREFIX}{k}": f"{metrics[k]:.6g}" for k in VERSION_METRICS},
    }


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
        # The tags are created with the version (one registry call): the webhook of
        # model_version.created never sees a version without its lineage.
        mv = mlflow.register_model(info.model_uri, name, tags={k: str(v) for k, v in tags.items()})
        out["version"] = str(mv.version)
    return out


def load_surrogate(uri: str) -> FastSurrogate:
    """The fast inference object of a logged or registered surrogate (``models:/name@alias``,
    ``models:/name/3``, ``runs:/<id>/model``, a local model directory).

    A missing or corrupt ``MLmodel``, ``surrogate.pt`` or ``python_model.pkl`` raises
    ``ModelArtifactError`` naming the file; an unknown name, version or alias, or an
    unreachable store, raises MLflow's own exception (``MlflowException``, connection errors);
    a model that is not an oscflow surrogate, ``ConfigError``."""
    from mlflow.models import Model

    with tempfile.TemporaryDirectory(prefix="oscflow-model-") as tmp:
        # A registry entry whose files are gone downloads as an empty directory.
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
        try:
            flavor = Model.load(str(local / MLMODEL)).flavors["python_function"]
            pickled = str(flavor["python_model"])
            weights = str(flavor["artifacts"][ARTIFACT]["path"])
        except Exception as exc:
            raise ModelArtifactError(uri, MLMODEL, _detail(exc)) from exc
        try:
            loaded = mlflow.pyfunc.load_model(str(local))
            python_model = loaded.unwrap_python_model()
        except Exception as exc:
            try:
                SpectrumSurrogate.load(local / weights)
            except Exception as weights_exc:  # noqa: BLE001
                raise ModelArtifactError(uri, weights, _detail(weights_exc)) from exc
            raise ModelArtifactError(uri, pickled, _detail(exc)) from exc
    if not isinstance(python_model, SurrogatePyfunc):
        raise ConfigError(
            "model",
            f"{uri} is not an oscflow surrogate (it wraps {type(python_model).__name__})",
            "give the URI of a model registered by oscflow train",
        )
    return python_model.surrogate


def _detail(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}".rstrip(": ")
