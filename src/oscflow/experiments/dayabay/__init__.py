"""Daya Bay: the collaboration's full data release (5.55 M IBD candidates, 8 detectors, 3158
days) with the collaboration's own analysis model as the truth (``pip install oscflow[dayabay]``).

The truth model is ``dayabay_model.model_dayabay`` (package ``dayabay-model``, data in
``dayabay-data-official``; Phys. Rev. Lett. 130, 161802 (2023)) evaluated at the surrogate's
input parameters with every other parameter at its nominal value; its output is the
concatenated detector × period spectrum that the official χ² uses.
"""

from __future__ import annotations

from .model import DayaBayExperiment, build

__all__ = ["DayaBayExperiment", "build"]
