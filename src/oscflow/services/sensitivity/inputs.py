"""The sensitivity configuration, validated: every bad value is a ConfigError naming the key."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ...errors import ConfigError
from ...physics.ibd import PROMPT_OFFSET

ANALYSES = ("solar",)
SOURCES = ("paper", "model")
PREDICTORS = ("exact", "surrogate")
METHODS = ("fc", "gauss", "auto")
SIGNAL_SOURCES = ("auto", "paper", "computed")
ENERGIES = ("neutrino", "prompt")
FC_STATISTICS = ("mean", "median")


@dataclass(frozen=True)
class Window:
    """An analysis window [emin, emax] (MeV) in neutrino or prompt energy."""

    name: str
    emin: float
    emax: float
    energy: str = "neutrino"

    @property
    def neutrino_range(self) -> tuple[float, float]:
        """The window in E_ν (prompt windows shifted by +0.782 MeV, zeroth-order IBD)."""
        shift = PROMPT_OFFSET if self.energy == "prompt" else 0.0
        return self.emin + shift, self.emax + shift

    def label(self) -> str:
        var = "E_ν" if self.energy == "neutrino" else "E_prompt"
        return f"{self.emin:g}–{self.emax:g} MeV ({var})"


def number(value: Any, key: str, *, positive: bool = False, nonneg: bool = False) -> float:
    """``value`` as a finite float, else ConfigError for ``key``."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(key, f"{value!r} is not a number", "give a number") from None
    if not math.isfinite(x):
        raise ConfigError(key, f"{x} is not finite", "give a finite number")
    if positive and not x > 0:
        raise ConfigError(key, f"{x:g} must be > 0", f"set {key} to a positive value")
    if nonneg and not x >= 0:
        raise ConfigError(key, f"{x:g} must be >= 0", f"set {key} to a value >= 0")
    return x


def choice(value: Any, key: str, options: tuple[str, ...]) -> str:
    if str(value) not in options:
        raise ConfigError(key, f"{value!r} is unknown", f"use one of {', '.join(options)}")
    return str(value)


def windows(cfg: DictConfig) -> tuple[Window, ...]:
    """The configured windows: named, non-empty, not inverted, in a known energy variable."""
    raw = cfg.windows
    if not OmegaConf.is_list(raw) or len(raw) == 0:
        raise ConfigError(
            "windows",
            f"must be a non-empty list of {{name, emin, emax, energy}}, got {raw!r}",
            "choose a window set with sensitivity/windows@windows=seed003 (or surrogate_prompt)",
        )
    out = []
    for i, w in enumerate(raw):
        key = f"windows.{i}"
        name = str(w.get("name") or f"W{i}")
        emin = number(w.get("emin"), f"{key}.emin", nonneg=True)
        emax = number(w.get("emax"), f"{key}.emax", positive=True)
        if not emin < emax:
            raise ConfigError(
                f"{key}.emin",
                f"window {name} [{emin:g}, {emax:g}] MeV is empty or inverted",
                f"set {key}.emin < {key}.emax",
            )
        energy = choice(w.get("energy", "neutrino"), f"{key}.energy", ENERGIES)
        out.append(Window(name, emin, emax, energy))
    names = [w.name for w in out]
    if len(set(names)) != len(names):
        raise ConfigError("windows", f"names {names} repeat", "give each window its own name")
    return tuple(out)


def categories(cfg: DictConfig, known: tuple[str, ...]) -> tuple[str, ...]:
    """Background categories to include; each must be one the sources know."""
    cats = tuple(str(c) for c in cfg.background.categories)
    unknown = [c for c in cats if c not in known]
    if unknown:
        raise ConfigError(
            "background.categories",
            f"unknown categories {unknown}",
            f"use some of {', '.join(known)}",
        )
    if not cats:
        raise ConfigError("background.categories", "is empty", "list at least one category")
    return cats


def rate_uncertainties(cfg: DictConfig, cats: tuple[str, ...]) -> dict[str, float]:
    table: Mapping[str, Any] = cfg.paper.rate_uncertainty
    out = {}
    for c in cats:
        if c not in table:
            raise ConfigError(
                f"paper.rate_uncertainty.{c}", "missing", "give the relative uncertainty"
            )
        out[c] = number(table[c], f"paper.rate_uncertainty.{c}", nonneg=True)
    return out


@dataclass(frozen=True)
class LimitSettings:
    method: str
    cl: float
    auto_fc_max_b: float
    gauss_coefficient: float
    fc_statistic: str


def limit_settings(cfg: DictConfig) -> LimitSettings:
    cl = number(cfg.limit.cl, "limit.cl")
    if not 0 < cl < 1:
        raise ConfigError("limit.cl", f"{cl:g} is outside (0, 1)", "e.g. limit.cl=0.9")
    return LimitSettings(
        method=choice(cfg.limit.method, "limit.method", METHODS),
        cl=cl,
        auto_fc_max_b=number(cfg.limit.auto_fc_max_b, "limit.auto_fc_max_b", nonneg=True),
        gauss_coefficient=number(
            cfg.limit.gauss_coefficient, "limit.gauss_coefficient", positive=True
        ),
        fc_statistic=choice(cfg.limit.fc_statistic, "limit.fc_statistic", FC_STATISTICS),
    )


@dataclass(frozen=True)
class Exposure:
    seconds: float
    free_protons: float
    efficiency: float

    @property
    def days(self) -> float:
        return self.seconds / 86400.0

    @property
    def factor(self) -> float:
        """T · n_p · ε (s): signal events = σ̄ · Φ · factor."""
        return self.seconds * self.free_protons * self.efficiency


def exposure(cfg: DictConfig) -> Exposure:
    eff = number(cfg.exposure.efficiency, "exposure.efficiency", positive=True)
    if eff > 1:
        raise ConfigError("exposure.efficiency", f"{eff:g} > 1", "give an efficiency in (0, 1]")
    return Exposure(
        seconds=number(cfg.exposure.seconds, "exposure.seconds", positive=True),
        free_protons=number(cfg.exposure.free_protons, "exposure.free_protons", positive=True),
        efficiency=eff,
    )


def b_perp(cfg: DictConfig) -> tuple[float, ...]:
    values = tuple(
        number(b, f"magnetic_moment.b_perp_kG.{i}", positive=True)
        for i, b in enumerate(cfg.magnetic_moment.b_perp_kG)
    )
    if not values:
        raise ConfigError("magnetic_moment.b_perp_kG", "is empty", "list at least one field")
    return values
