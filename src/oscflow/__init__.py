"""oscflow: experiment tracking and model registry for neural-network surrogates of neutrino spectra."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``oscflow.fit(model_uri, observation, **config)``: see ``oscflow.services.fit.api.fit``."""
    if name == "fit":
        from .services.fit.api import fit

        return fit
    raise AttributeError(f"module 'oscflow' has no attribute {name!r}")
