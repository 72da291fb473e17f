"""JUNO: reactor ν̄ₑ at 52.5 km from the Taishan and Yangjiang cores (plus Daya Bay, Huizhou).

The plug-in turns the ``experiment`` config node (conf/experiment/juno.yaml, where every value
has its source) into the physics objects: cores, detector, oscillation settings, backgrounds,
parameter space, and the exact predictors of the binned spectrum.
"""

from __future__ import annotations

from .model import JunoExperiment, build

__all__ = ["JunoExperiment", "build"]
