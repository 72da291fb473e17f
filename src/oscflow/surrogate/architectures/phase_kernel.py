"""An oscillation spectrum as a linear functional of its L/E distribution, learned per bin.

For a two-flavour oscillation with the amplitude factored out (JSNS²'s appearance per unit
sin²2θμe; any experiment where one Δm² sets the phase), the expected counts in bin b are

    N_b(Δm², d) = ∫ dω g_b(ω; d) sin²(ω Δm²/2),   ω = 2 · 1.26693 · L[m] / E[MeV]  (rad/eV²),

where g_b is the bin's distribution of ω = 4 × (the phase per unit Δm²) weighted by flux ×
cross-section × detector response × baseline distribution, and d are the other inputs
(detector parameters such as the energy scale). The dependence on Δm² is therefore known
exactly, the Fourier sine-squared transform of g_b; what depends on the detector is g_b. This
architecture discretises ω on ``n_omega`` uniformly spaced frequencies in ``omega`` and learns
the weights with a small MLP of d:

    N_b = s_b Σ_k c_bk(d) sin²(ω_k Δm²/2),

s_b the mean training count of bin b (2/n_omega of it: c ≈ 1 is the averaged spectrum). It
is exact at Δm² = 0 (no signal), reaches the averaging regime (N_b → s_b Σ c_bk / 2) without
learning it, and cannot produce wiggles in Δm² that the exact model does not have: an MLP of
log Δm² had to learn 4–30 extrema per bin between 3 and 100 eV² at JSNS²'s 24 m and failed the
accuracy gates. A smooth g_b on an ω grid of spacing h is represented without aliasing for
Δm² < 2π/h; the builder requires π/h above the top of the Δm² range (a factor 2 margin).

Options: ``phase_input`` (the Δm² input, in its own units: eV²), ``omega`` [lo, hi] (rad per
unit of ``phase_input``: 2 · 1.26693 · L/E over the detector's baselines and the neutrino
energies that reach the bins, with a margin), ``n_omega``, ``hidden``/``activation`` of the
MLP of the other inputs (scaled to [−1, 1] over their training ranges; none: c is a plain
parameter matrix).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ...errors import ConfigError
from ..scaling import InputScaler
from . import Axis, register
from .seed_mlp import mlp


class PhaseKernel(nn.Module):
    omega: torch.Tensor  # buffers (register_buffer)
    scale: torch.Tensor

    def __init__(
        self,
        axes: Sequence[Axis],
        n_out: int,
        phase_input: str,
        omega: tuple[float, float],
        n_omega: int,
        hidden: list[int],
        act: str,
    ) -> None:
        super().__init__()
        names = [a.name for a in axes]
        self.phase = names.index(phase_input)
        self.n_out, self.n_omega = n_out, n_omega
        self.register_buffer("omega", torch.linspace(omega[0], omega[1], n_omega))
        self.register_buffer("scale", torch.ones(n_out))
        others = [a for a in axes if a.name != phase_input]
        self.others = [names.index(a.name) for a in others]
        if others:
            self.detector_scaler: InputScaler | None = InputScaler(
                [a.lo for a in others], [a.hi for a in others], [a.log for a in others]
            )
            self.weights: nn.Module = mlp(len(others), n_out * n_omega, hidden, act)
            last = self.weights[-1]
            assert isinstance(last, nn.Linear)
            with torch.no_grad():
                last.weight.mul_(0.1)
                last.bias.fill_(1.0)
        else:
            self.detector_scaler = None
            self.weights = nn.Module()
            self.constant = nn.Parameter(torch.ones(n_out, n_omega))

    def fit(self, counts: torch.Tensor) -> None:
        """Set s_b from training spectra in counts (N, n_out)."""
        mean = counts.double().mean(0).clamp_min(1e-12 * float(counts.abs().max()) + 1e-30)
        self.scale.copy_((2.0 / self.n_omega) * mean)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        basis = torch.sin(0.5 * x[:, self.phase, None] * self.omega) ** 2  # (B, n_omega)
        if self.detector_scaler is None:
            return (basis @ self.constant.T) * self.scale
        c = self.weights(self.detector_scaler(x[:, self.others]))
        c = c.reshape(-1, self.n_out, self.n_omega)
        return torch.einsum("bkw,bw->bk", c, basis) * self.scale


def shape(options: Mapping[str, Any]) -> str:
    """``w150-64x64``: frequencies, then the hidden widths of the MLP of the other inputs."""
    hidden = "x".join(str(h) for h in options.get("hidden", [64, 64]))
    return f"w{options.get('n_omega', 150)}-{hidden}"


@register("phase_kernel", shape=shape, physical=True)
def build(
    axes: Sequence[Axis],
    edges: Sequence[float],
    options: Mapping[str, Any],
    fit_counts: Callable[[], torch.Tensor] | None = None,
) -> nn.Module:
    names = [a.name for a in axes]
    phase = str(options.get("phase_input", ""))
    if phase not in names:
        raise ConfigError(
            "model.phase_input",
            f"{phase!r} is not an input of this dataset {names}",
            "set model.phase_input to the Δm² input (phase_kernel is for one-Δm² spectra: JSNS²)",
        )
    lo, hi = (float(v) for v in options.get("omega", (0.0, 0.0)))
    n = int(options.get("n_omega", 150))
    if not 0 < lo < hi or n < 2:
        raise ConfigError(
            "model.omega",
            f"[{lo:g}, {hi:g}] with n_omega = {n}",
            "give 0 < lo < hi and n_omega >= 2",
        )
    top = next(a.hi for a in axes if a.name == phase)
    step = (hi - lo) / (n - 1)
    if step * top > math.pi:
        need = math.ceil((hi - lo) * top / math.pi) + 1
        raise ConfigError(
            "model.n_omega",
            f"{n} spaces the frequencies by {step:.3g}, which aliases above {phase} = "
            f"{math.pi / step:.3g} (the data reach {top:g})",
            f"set model.n_omega >= {need}",
        )
    kernel = PhaseKernel(
        axes,
        len(edges) - 1,
        phase,
        (lo, hi),
        n,
        list(options.get("hidden", [64, 64])),
        str(options.get("activation", "silu")),
    )
    if fit_counts is not None:
        kernel.fit(fit_counts())
    return kernel
