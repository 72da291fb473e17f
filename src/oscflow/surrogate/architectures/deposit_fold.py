"""A reactor spectrum as the analytic detector fold of a learned deposited-energy spectrum.

The exact JUNO predictor (``physics/response_fold.py``) computes a prompt spectrum in two
steps: the oscillated events histogrammed in u = E_dep·Y(r) (the light-weighted deposit; what
only the Monte Carlo knows: γ leakage, light-yield non-uniformity), then a fold that is
analytic in the detector parameters (E_rec = s·u·NL(u), Gaussian resolution
σ² = a²E + b²E² + c², each u bin uniform). This architecture keeps that structure:

    ρ(u; θ) = ρ̄(u) · (1 + MLP(θ)),     N_k = Σ_i ρ_i(θ) · F_ik(s, NL, a, b, c),

the MLP learning the deposit spectrum from the inputs that are not fold parameters (the
oscillation parameters, or anything else the dataset varies), and F the same box-Gaussian
fold as the exact model, in torch (differentiable in every input). The energy scale,
non-linearity and resolution are therefore exact inputs: no network has to learn how a 1 %
energy shift moves 400 bins, and a surrogate trained on them extrapolates in them as the
physics does. ρ̄ is the training mean spectrum mapped back through the nominal map.

Its output bins are the dataset's (prompt energy, MeV). Options: ``grid`` {lo, hi, step} (MeV: the u bins the network predicts; the builder checks
that they cover the output bins for every fold input in its training range),
``hidden``/``activation`` (the MLP), ``detector`` (the fixed values of the fold parameters
that are not inputs: conf/model/deposit_fold.yaml takes the experiment's detector block).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from itertools import product
from typing import Any

import numpy as np
import torch
from torch import nn
from torch._C._functorch import is_functorch_wrapped_tensor

from ...errors import ConfigError
from ...physics.detector import DetectorConfig
from ...physics.response_fold import mapped_edges
from ..scaling import InputScaler
from . import Axis, register
from .seed_mlp import mlp

FOLD_PARAMETERS = ("escale", "nl_p0", "nl_p1", "nl_p2", "nl_p3", "res_a", "res_b", "res_c")
WINDOW_SIGMAS = 5.0  # beyond it a u bin is wholly below or above an edge (Φ(−5) = 3e-7)
CHUNK = 512  # rows per fold pass
CACHE_BYTES = 2 << 30  # memoised fold weights (DepositFold.memoise)


def _mapped(u: np.ndarray, d: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """s·u·NL(u) and σ there for the fold parameters ``d`` (the exact model's map:
    ``physics/response_fold.mapped_edges``, ``DetectorConfig.sigma``)."""
    det = dataclasses.replace(DetectorConfig(), **{k: d[k] for k in FOLD_PARAMETERS})
    e = mapped_edges(np.asarray(u, dtype=np.float64), det)
    return e, det.sigma(e)


class DepositFold(nn.Module):
    u_edges: torch.Tensor  # buffers
    out_edges: torch.Tensor
    rho_bar: torch.Tensor
    first: torch.Tensor
    pair_edge: torch.Tensor
    pair_u: torch.Tensor
    fixed: torch.Tensor

    def __init__(
        self,
        axes: Sequence[Axis],
        out_edges: np.ndarray,
        u_edges: np.ndarray,
        detector: Mapping[str, float],
        hidden: list[int],
        act: str,
    ) -> None:
        super().__init__()
        names = [a.name for a in axes]
        self.fold_index = [names.index(k) if k in names else -1 for k in FOLD_PARAMETERS]
        others = [a for a in axes if a.name not in FOLD_PARAMETERS]
        self.others = [names.index(a.name) for a in others]
        n_u = len(u_edges) - 1
        self.register_buffer("u_edges", torch.as_tensor(u_edges, dtype=torch.float64))
        self.register_buffer("out_edges", torch.as_tensor(out_edges, dtype=torch.float64))
        self.register_buffer(
            "fixed",
            torch.tensor([float(detector[k]) for k in FOLD_PARAMETERS], dtype=torch.float64),
        )
        self.register_buffer("rho_bar", torch.ones(n_u))
        self._memo: dict[bytes, torch.Tensor] = {}
        self._memoise = False
        first, pair_edge, pair_u = _windows(axes, out_edges, u_edges, detector)
        self.register_buffer("first", torch.as_tensor(first))
        self.register_buffer("pair_edge", torch.as_tensor(pair_edge))
        self.register_buffer("pair_u", torch.as_tensor(pair_u))
        if others:
            self.scaler: InputScaler | None = InputScaler(
                [a.lo for a in others], [a.hi for a in others], [a.log for a in others]
            )
            self.net: nn.Module = mlp(len(others), n_u, hidden, act)
            last = self.net[-1]
            assert isinstance(last, nn.Linear)
            with torch.no_grad():
                last.weight.mul_(0.1)
                last.bias.zero_()
        else:
            self.scaler = None
            self.net = nn.Module()
            self.constant = nn.Parameter(torch.zeros(n_u))

    def fit(self, counts: torch.Tensor, detector: Mapping[str, float]) -> None:
        """ρ̄: the training mean spectrum (counts per output bin) read back at each u bin
        through the nominal map, as counts per u bin."""
        mean = counts.double().mean(0).numpy()
        x = self.out_edges.double().numpy()
        density = mean / np.diff(x)
        u = self.u_edges.double().numpy()
        e, _ = _mapped(u, detector)
        centres = 0.5 * (x[1:] + x[:-1])
        at = np.interp(0.5 * (e[1:] + e[:-1]), centres, density)
        rho = np.maximum(at * np.diff(e), 1e-3 * max(float(at.max()), 1e-30) * np.diff(e))
        self.rho_bar.copy_(torch.as_tensor(rho))

    def parameters_of(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The eight fold parameters per row (inputs or fixed values), (B,) each."""
        return [
            x[:, i] if i >= 0 else self.fixed[j].to(x.dtype).expand(x.shape[0])
            for j, i in enumerate(self.fold_index)
        ]

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """P(E_rec < edge) of each (edge, u bin) pair of the windows, (B, pairs): the box-Gaussian
        fold of ``physics/response_fold.py`` at each row's fold parameters."""
        s, p0, p1, p2, p3, a, b, c = (v[:, None] for v in self.parameters_of(x))
        u = self.u_edges.to(x.dtype)
        e = s * u * (p0 + p3 * u) / (1.0 + p1 * torch.exp(-p2 * u))  # (B, U + 1)
        mid = 0.5 * (e[:, 1:] + e[:, :-1])
        sigma = torch.sqrt(a**2 * mid + (b * mid) ** 2 + c**2)
        lo, hi, sg = e[:, self.pair_u], e[:, self.pair_u + 1], sigma[:, self.pair_u]
        edge = self.out_edges.to(x.dtype)[self.pair_edge]
        return (sg / (hi - lo) * (_g((edge - lo) / sg) - _g((edge - hi) / sg))).clamp(0.0, 1.0)

    @property
    def memoise(self) -> bool:
        """Memoise the fold weights per row (``SurrogateModule`` sets it while fitting: the
        training and validation sets revisit the same detector points every epoch, and the
        weights are most of a step's work, 5×). Up to ``CACHE_BYTES``; never for inputs that
        carry gradients. Unset: the memo is dropped."""
        return self._memoise

    @memoise.setter
    def memoise(self, value: bool) -> None:
        self._memoise = bool(value)
        if not value:
            self._memo.clear()

    def _memo_weights(self, x: torch.Tensor) -> torch.Tensor:
        cols = [i for i in self.fold_index if i >= 0]
        keys = [row.tobytes() for row in x[:, cols].detach().cpu().numpy()]
        missing = [i for i, k in enumerate(keys) if k not in self._memo]
        if missing:
            fresh = self.weights(x[missing])
            room = CACHE_BYTES // max(1, fresh.shape[1] * fresh.element_size())
            for i, row in zip(missing, fresh, strict=True):
                if len(self._memo) < room:
                    self._memo[keys[i]] = row
            if len(self._memo) < len(set(keys)):
                return self.weights(x)
        return torch.stack([self._memo[k] for k in keys])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > CHUNK:  # the fold's intermediates are rows × (edge, u bin) pairs
            return torch.cat([self.forward(part) for part in x.split(CHUNK)])
        if self.scaler is None:
            modulation = self.constant.to(x.dtype).expand(x.shape[0], -1)
        else:
            modulation = self.net(self.scaler(x[:, self.others]))
        rho = self.rho_bar.to(x.dtype) * (1.0 + modulation)  # (B, U)
        memo = self._memoise and not x.requires_grad and not is_functorch_wrapped_tensor(x)
        below = self._memo_weights(x) if memo else self.weights(x)
        contribution = rho[:, self.pair_u] * below
        # P(E_rec < edge) summed: the u bins wholly below each edge's window, plus the window.
        # Double precision: the bins are differences of sums of ~1e5 counts.
        prefix = torch.cumsum(rho.double(), dim=1)
        prefix = torch.cat([torch.zeros_like(prefix[:, :1]), prefix], dim=1)
        cdf = prefix[:, self.first].index_add(1, self.pair_edge, contribution.double())
        return (cdf[:, 1:] - cdf[:, :-1]).to(x.dtype)


def _g(t: torch.Tensor) -> torch.Tensor:
    """G(t) = tΦ(t) + φ(t), the antiderivative of Φ."""
    return t * 0.5 * (1.0 + torch.erf(t / math.sqrt(2.0))) + torch.exp(-0.5 * t * t) / math.sqrt(
        2.0 * math.pi
    )


def _windows(
    axes: Sequence[Axis],
    out_edges: np.ndarray,
    u_edges: np.ndarray,
    detector: Mapping[str, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every output edge, the u bins that may straddle it for some fold input in its
    training range (the corners of the box: E_rec is monotone in each fold parameter):
    ``first[j]`` the first of them (all below are wholly below the edge), and the flattened
    (edge, u bin) pairs of the windows."""
    ranges = {a.name: (a.lo, a.hi) for a in axes if a.name in FOLD_PARAMETERS}
    corners = [
        {**detector, **dict(zip(ranges, values, strict=True))}
        for values in product(*ranges.values())
    ] or [dict(detector)]
    n_u = len(u_edges) - 1
    lo_k = np.full(len(out_edges), n_u)
    hi_k = np.full(len(out_edges), -1)
    for d in corners:
        e, sigma = _mapped(u_edges, d)
        mid_sigma = 0.5 * (sigma[1:] + sigma[:-1])
        top = e[1:] + WINDOW_SIGMAS * mid_sigma  # bin k reaches up to here
        bottom = e[:-1] - WINDOW_SIGMAS * mid_sigma
        lo_k = np.minimum(lo_k, np.searchsorted(top, out_edges, side="left"))
        hi_k = np.maximum(hi_k, np.searchsorted(bottom, out_edges, side="left") - 1)
    lo_k = np.clip(lo_k, 0, n_u)
    hi_k = np.clip(hi_k, -1, n_u - 1)
    counts = np.maximum(hi_k - lo_k + 1, 0)
    pair_edge = np.repeat(np.arange(len(out_edges)), counts)
    pair_u = np.concatenate([np.arange(a, a + n) for a, n in zip(lo_k, counts, strict=True)])
    return lo_k.astype(np.int64), pair_edge.astype(np.int64), pair_u.astype(np.int64)


def shape(options: Mapping[str, Any]) -> str:
    """``u20keV-256x256``: the deposit grid step, then the MLP's hidden widths."""
    grid = options.get("grid", {})
    hidden = "x".join(str(h) for h in options.get("hidden", [256, 256]))
    return f"u{1000 * float(grid.get('step', 0.02)):.0f}keV-{hidden}"


@register("deposit_fold", shape=shape, physical=True)
def build(
    axes: Sequence[Axis],
    edges: Sequence[float],
    options: Mapping[str, Any],
    fit_counts: Callable[[], torch.Tensor] | None = None,
) -> nn.Module:
    detector = dict(options.get("detector") or {})
    missing = [k for k in FOLD_PARAMETERS if k not in detector]
    if missing:
        raise ConfigError(
            "model.detector",
            f"no value for {missing}",
            "set model.detector to the experiment's detector block (${experiment.detector})",
        )
    detector = {k: float(detector[k]) for k in FOLD_PARAMETERS}
    out_edges = np.asarray(edges, dtype=np.float64)
    grid = dict(options.get("grid") or {})
    lo, hi, step = (float(grid.get(k, v)) for k, v in (("lo", 0.4), ("hi", 10.0), ("step", 0.02)))
    if not 0 <= lo < hi or step <= 0:
        raise ConfigError(
            "model.grid", f"lo={lo}, hi={hi}, step={step}", "give 0 <= lo < hi, step > 0"
        )
    u_edges = lo + step * np.arange(round((hi - lo) / step) + 1)
    ranges = {a.name: (a.lo, a.hi) for a in axes if a.name in FOLD_PARAMETERS}
    for values in product(*ranges.values()):
        d = {**detector, **dict(zip(ranges, values, strict=True))}
        e, sigma = _mapped(u_edges[[0, -1]], d)
        if (
            e[0] + WINDOW_SIGMAS * sigma[0] > out_edges[0]
            or e[1] - WINDOW_SIGMAS * sigma[1] < out_edges[-1]
        ):
            raise ConfigError(
                "model.grid",
                f"u in [{lo:g}, {hi:g}] MeV maps to [{e[0]:.3g}, {e[1]:.3g}] MeV at {d}, "
                f"not {WINDOW_SIGMAS:g}σ beyond the output range [{out_edges[0]:g}, "
                f"{out_edges[-1]:g}]",
                "widen model.grid (lower lo, raise hi)",
            )
    fold = DepositFold(
        axes,
        out_edges,
        u_edges,
        detector,
        list(options.get("hidden", [256, 256])),
        str(options.get("activation", "silu")),
    )
    if fit_counts is not None:
        fold.fit(fit_counts(), detector)
    return fold
