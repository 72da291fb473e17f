"""MLflow model registry: logging surrogates, registering versions with lineage, loading them."""

from .models import (
    ModelArtifactError,
    SurrogatePyfunc,
    load_surrogate,
    log_and_register,
    registered_name,
    version_tags,
)

__all__ = [
    "ModelArtifactError",
    "SurrogatePyfunc",
    "load_surrogate",
    "log_and_register",
    "registered_name",
    "version_tags",
]
