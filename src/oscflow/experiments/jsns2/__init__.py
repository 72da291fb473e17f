"""JSNS²: ν̄_μ → ν̄ₑ appearance at 24 m (JSNS²-II: and 48 m) from μ⁺ decay at rest at the
J-PARC MLF mercury target, detected by inverse beta decay in Gd-loaded liquid scintillator.

The plug-in turns the ``experiment`` config node (conf/experiment/jsns2.yaml, where every value
has its source) into the physics objects: the μDAR source, the detector and its baseline
distribution, the 3+1 appearance model, the backgrounds of the 2022 data, and the exact
predictor of the binned prompt-energy spectrum.
"""

from __future__ import annotations

from .model import Jsns2Experiment, build

__all__ = ["Jsns2Experiment", "build"]
