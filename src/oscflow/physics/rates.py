"""IBD event-rate densities: flux × cross-section × target protons × live time × efficiency."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import ibd
from .constants import SECONDS_PER_DAY
from .reactor import Core


@dataclass(frozen=True)
class Exposure:
    """Live time (days), selection efficiency (0–1] and number of free target protons."""

    days: float
    efficiency: float = 1.0
    free_protons: float = ibd.JUNO_FREE_PROTONS

    def __post_init__(self) -> None:
        if not self.days > 0:
            msg = f"exposure.days = {self.days} must be > 0 (live time in days)"
            raise ValueError(msg)
        if not 0 < self.efficiency <= 1:
            msg = f"exposure.efficiency = {self.efficiency} must be in (0, 1]"
            raise ValueError(msg)
        if not self.free_protons > 0:
            msg = f"free_protons = {self.free_protons} must be > 0"
            raise ValueError(msg)

    @property
    def proton_seconds(self) -> float:
        """Target protons × live seconds × efficiency."""
        return self.free_protons * self.days * SECONDS_PER_DAY * self.efficiency


def core_rate_density(
    energy: ArrayLike, core: Core, exposure: Exposure, extrapolation: str = "exponential"
) -> NDArray[np.float64]:
    """Unoscillated IBD events per MeV of neutrino energy from one core over the exposure."""
    e = np.asarray(energy, dtype=np.float64)
    return exposure.proton_seconds * ibd.cross_section(e) * core.flux(e, extrapolation)


def cores_rate_density(
    energy: ArrayLike, cores: Sequence[Core], exposure: Exposure, extrapolation: str = "exponential"
) -> NDArray[np.float64]:
    """Per-core unoscillated rate densities, shape (n_cores, *energy.shape), events/MeV."""
    return np.stack([core_rate_density(energy, c, exposure, extrapolation) for c in cores])
