"""oscflow: experiment tracking and model registry for neural-network surrogates of neutrino spectra."""

__version__ = "0.1.0"
