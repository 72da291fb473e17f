"""Three-flavour P(ν̄ₑ → ν̄ₑ) in vacuum or constant-density matter (``physics/oscillation.py``).

Parameters (PDG 2022 conventions, see ``physics/oscillation.py``): sin²θ₁₂, sin²θ₁₃, Δm²₂₁
(eV²) and |Δm²₃₂| (eV²); the mass ordering and the matter treatment come from the
experiment's ``OscillationSettings`` (``ordering``, ``matter``, ``density`` in g/cm³,
``electron_fraction``). Baselines in km, energies in MeV.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..oscillation import (
    CRUST_DENSITY,
    CRUST_ELECTRON_FRACTION,
    ORDERINGS,
    OscillationParameters,
    _probability_from_eigen,
    is_ordering,
    matter_eigensystem,
)
from ..survival_sums import grouped_survival
from . import OscillationModel, Propagator, WeightedBaselines, register


@register
class ThreeFlavour(OscillationModel):
    """ν̄ₑ survival with three flavours; the eigensystem is computed once per propagator."""

    name = "three_flavour"
    channel = "antinu_e->antinu_e"
    parameters = ("sin2_th12", "sin2_th13", "dm2_21", "dm2_32")

    def _parameters(
        self, params: Mapping[str, NDArray[np.float64]], settings: Any
    ) -> OscillationParameters:
        s12, s13, d21, d32 = (
            np.asarray(params[k], dtype=np.float64).reshape(-1, 1) for k in self.parameters
        )
        ordering = getattr(settings, "ordering", "normal")
        if not is_ordering(ordering):
            msg = f"ordering {ordering!r} is not one of {ORDERINGS}"
            raise ValueError(msg)
        return OscillationParameters(s12, s13, d21, d32, ordering=ordering)

    def propagator(
        self, energy: ArrayLike, params: Mapping[str, NDArray[np.float64]], settings: Any
    ) -> Propagator:
        e = np.asarray(energy, dtype=np.float64)
        osc = self._parameters(params, settings)
        if getattr(settings, "matter", False):
            weights, lams = matter_eigensystem(
                e,
                osc,
                getattr(settings, "density", CRUST_DENSITY),
                getattr(settings, "electron_fraction", CRUST_ELECTRON_FRACTION),
            )
        else:
            d21v, d31v = osc.splittings()
            weights, lams = osc.electron_row(), (np.zeros_like(d21v), d21v, d31v)
        inv_e = 1.0 / e

        def probability(baseline_km: float) -> NDArray[np.float64]:
            return _probability_from_eigen(weights, lams, baseline_km * inv_e)

        return probability

    def grouped(
        self,
        energy: ArrayLike,
        params: Mapping[str, NDArray[np.float64]],
        settings: Any,
        baselines: WeightedBaselines,
    ) -> NDArray[np.float64]:
        """The per-group sums of the propagator's P, by the fast exact path of
        ``physics/survival_sums.py`` (equal to the reference to rounding)."""
        return grouped_survival(
            energy,
            self._parameters(params, settings),
            baselines.km,
            baselines.weights,
            baselines.group_index,
            baselines.n_groups,
            matter=bool(getattr(settings, "matter", False)),
            density=getattr(settings, "density", CRUST_DENSITY),
            electron_fraction=getattr(settings, "electron_fraction", CRUST_ELECTRON_FRACTION),
        )
