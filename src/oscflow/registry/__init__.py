"""MLflow model registry: logging surrogates, registering versions with lineage, loading them."""

from .models import SurrogatePyfunc, load_surrogate, log_and_register, registered_name

__all__ = ["SurrogatePyfunc", "load_surrogate", "log_and_register", "registered_name"]
