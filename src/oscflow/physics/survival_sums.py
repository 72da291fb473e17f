"""Three-flavour ν̄ₑ survival summed over reactor cores: the fast exact path of the predictors.

A reactor predictor needs, per parameter point b and energy node n, Σ_{c ∈ g} s_c(n) P_c(b, n)
for each group g of cores (s_c: core c's share of the rate at node n). ``oscillation.py``
evaluates P core by core (``survival_probability``: three sin² per core on (B, N) arrays; the
predictors did so until issue 18, ~80 % of their time). This module returns the same sums,
equal to rounding (tests hold them to 1e-12 relative), ~5–7× faster for JUNO, by:

- one eigensystem per (b, n) for all cores (it depends on E and the parameters, not on the
  baseline): in matter the closed form of ``oscillation.matter_eigensystem`` rewritten in the
  one variable that carries the energy dependence (``_matter_tile``);
- the sum over cores folded into the pair sums: with cᵢⱼ = 4 wᵢ wⱼ (w: electron-row weights,
  λ: eigenvalues, eV²) and xᵢⱼ,c = Δλᵢⱼ L_c / 4E (``constants.OSC_PHASE_COEFF``),

      Σ_c s_c P_c = S (1 − Σᵢ<ⱼ cᵢⱼ) + Σᵢ<ⱼ cᵢⱼ Σ_c s_c cos² xᵢⱼ,c,     S = Σ_c s_c,

  since P_c = 1 − Σᵢ<ⱼ cᵢⱼ sin² xᵢⱼ,c (the identity ``oscillation._probability_from_eigen``
  evaluates) and sin² = 1 − cos²;
- cores at one site (JUNO's eight Yangjiang and Taishan cores, 52.11–52.82 km) summed in one
  go by an expansion about the site's centre whose cost does not grow with the number of
  cores (``_Site``; truncation below 2⁻⁵⁶ of the site's weight, checked per tile); distant
  cores (Daya Bay, Huizhou) one by one;
- cos² x = 1 / (1 + tan² x): numpy's float64 tan is vectorised (SIMD, ≤ 1 ulp, where the CPU
  has AVX-512, as on this project's machines) while its sin is not: ~1.8 against ~28 ns per
  value at the phases of JUNO's cores (x up to ~500 rad; measured here with numpy 2.4). tan
  overflows nowhere (no double is an odd multiple of π/2), and cos² is within 2 ulp;
- temporaries sized for the CPU cache (``TILE`` values per tile) and updated in place, and
  the set-up that depends only on the energies, baselines and weights kept between calls
  when those arrays are read-only (a predictor's).

The reference path, P per core through the model's propagator, stays the definition:
``ReactorSource.survival_sums(..., reference=True)`` and the predictors' ``reference``
attribute select it, and tests hold the two equal. Units: energies MeV, baselines km, Δm² eV²,
densities g/cm³.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .constants import MATTER_POTENTIAL_COEFF, OSC_PHASE_COEFF
from .oscillation import (
    CLOSE_PAIR,
    CRUST_DENSITY,
    CRUST_ELECTRON_FRACTION,
    OscillationParameters,
    stable_eigensystem,
)

# Values (parameter points × energy nodes) per tile: the per-core work array holds TILE × cores
# doubles (~1.3 MB for JUNO's 10 cores), within the 2 MB L2 cache per core of current x86 CPUs.
# Measured on this project's machine: 8192–32768 are within 5 % of each other, and tiles of
# whole energy rows beat narrower ones.
TILE = 16384

_SQRT3 = math.sqrt(3.0)

Array = NDArray[np.float64]


def grouped_survival(
    energy: ArrayLike,
    params: OscillationParameters,
    baselines_km: Sequence[float],
    core_weight: ArrayLike,
    group_index: Sequence[int],
    n_groups: int,
    matter: bool = True,
    density: float = CRUST_DENSITY,
    electron_fraction: float = CRUST_ELECTRON_FRACTION,
) -> Array:
    """Σ_{c: group_index[c] = g} core_weight[c] · P(ν̄ₑ→ν̄ₑ; E, L_c), shape (G, B, N).

    ``energy`` (N,) MeV; ``params``: arrays of shape (B, 1) or scalars; ``baselines_km`` (C,);
    ``core_weight`` (C, N) or (C, 1); ``group_index`` (C,) in [0, n_groups). Equals the sum of
    ``oscillation.survival_probability`` per core to rounding (module docstring).
    """
    e = np.asarray(energy, dtype=np.float64)
    if e.ndim != 1:
        msg = f"energies must be 1-D (N,), got shape {e.shape}"
        raise ValueError(msg)
    n = e.shape[0]
    baselines = np.asarray(baselines_km, dtype=np.float64)
    groups = np.asarray(group_index, dtype=np.intp)
    weight = np.broadcast_to(np.asarray(core_weight, dtype=np.float64), (baselines.size, n))
    if (
        groups.shape != baselines.shape
        or np.any((groups < 0) | (groups >= n_groups))
        or np.bincount(groups, minlength=n_groups).min(initial=1) == 0
    ):
        msg = (
            f"group_index {groups.tolist()} must give each of the {baselines.size} baselines a "
            f"group in [0, {n_groups}) and each group a baseline"
        )
        raise ValueError(msg)
    s12, s13, d21, d31 = (
        np.asarray(x, dtype=np.float64).reshape(-1, 1)
        for x in (params.sin2_th12, params.sin2_th13, *params.splittings())
    )
    size = max(x.shape[0] for x in (s12, s13, d21, d31))
    s12, s13, d21, d31 = (np.broadcast_to(x, (size, 1)) for x in (s12, s13, d21, d31))

    out = np.empty((n_groups, size, n))
    if n == 0 or size == 0:
        return out
    blocks = _site_blocks(energy, core_weight, e, weight, baselines, groups, n_groups)
    potential = -MATTER_POTENTIAL_COEFF * density * electron_fraction * e  # ν̄: A < 0, eV²

    cols = min(n, TILE)
    rows = max(1, TILE // cols)
    scratch = _Scratch(int(np.bincount(groups).max()), rows, cols)
    for c0, sites in zip(range(0, n, cols), blocks, strict=True):
        c = slice(c0, min(c0 + cols, n))
        for r0 in range(0, size, rows):
            r = slice(r0, min(r0 + rows, size))
            if matter:
                weights, gaps = _matter_tile(potential[c], s12[r], s13[r], d21[r], d31[r])
            else:
                weights, gaps = _vacuum_tile(s12[r], s13[r], d21[r], d31[r])
            _sum_tile(out[:, r, c], weights, gaps, sites, scratch.view(r.stop - r.start, c))
    return out


# Site data (``_Site``) of recent calls, for inputs that cannot change: read-only arrays (a
# predictor's nodes and core shares), keyed by identity while the entry holds them. Only small
# layouts (N · cores below ``_CACHE_MAX_VALUES``) are kept; a predictor's are ~10⁵ values.
_CACHE: dict[tuple[object, ...], tuple[object, object, list[list[_Site]]]] = {}
_CACHE_LOCK = threading.Lock()  # predictors may run in threads (e.g. a Dask worker's)
_CACHE_ENTRIES = 8
_CACHE_MAX_VALUES = 2_000_000


def _site_blocks(
    energy: object,
    core_weight: object,
    e: Array,
    weight: Array,
    baselines: Array,
    groups: NDArray[np.intp],
    n_groups: int,
) -> list[list[_Site]]:
    """``_Site`` of every group for every column block of ``TILE`` energies (cached, see
    ``_CACHE``)."""
    frozen = all(isinstance(x, np.ndarray) and not x.flags.writeable for x in (energy, core_weight))
    key = (id(energy), id(core_weight), tuple(baselines), tuple(groups), n_groups, TILE)
    if frozen:
        with _CACHE_LOCK:
            entry = _CACHE.get(key)
        if entry is not None and entry[0] is energy and entry[1] is core_weight:
            return entry[2]
    inv_e = 1.0 / e
    cols = min(e.size, TILE)
    blocks = [
        [
            _Site(
                baselines[groups == g], weight[groups == g, c0 : c0 + cols], inv_e[c0 : c0 + cols]
            )
            for g in range(n_groups)
        ]
        for c0 in range(0, e.size, cols)
    ]
    if frozen and e.size * (baselines.size + 2 * MAX_ORDER) <= _CACHE_MAX_VALUES:
        with _CACHE_LOCK:
            while len(_CACHE) >= _CACHE_ENTRIES:
                del _CACHE[next(iter(_CACHE))]
            _CACHE[key] = (energy, core_weight, blocks)
    return blocks


# Largest phase spread θ = max |Δλ L_c/2E − Δλ L̄/2E| · 2 (rad) for which the expansion of
# order J about the site centre (``_Site``) has a remainder ≤ 2⁻⁵⁶ of the site's weight:
# Σ_{j>J} θʲ/j! ≤ θ^{J+1}/(J+1)! / (1 − θ/(J+2)). Index J; found by bisection at import.
MAX_ORDER = 32
_EXPANSION_TOL = 2.0**-56


def _remainder_bound(theta: float, order: int) -> float:
    if theta >= order + 2:
        return math.inf
    return theta ** (order + 1) / math.factorial(order + 1) / (1.0 - theta / (order + 2))


def _max_spread(order: int) -> float:
    lo, hi = 0.0, float(order + 2)
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _remainder_bound(mid, order) <= _EXPANSION_TOL else (lo, mid)
    return lo


MAX_SPREAD: tuple[float, ...] = tuple(_max_spread(j) for j in range(MAX_ORDER + 1))
# Cost model that picks, per tile and pair, the cheaper of the expansion (≈ 16 + 2J numpy
# passes over the tile) and the core-by-core sum (8 passes over the tile times the cores, one
# of them a tan): a call costs ~1 µs plus ~0.28 ns per value for a cheap pass, ~3 ns per value
# and core for the whole core-by-core sum (timings of the single passes on this project's
# machine). Small tiles (a single parameter point) favour the fewer calls of the core sum.
_CALL_NS = 1000.0
_PASS_NS = 0.28
_CORE_NS = 3.0
_CORE_CALLS = 8


class _Site:
    """One group of cores on one block of energies: per-core phases and weights, and the
    expansion about the site's centre.

    With L̄ the midpoint of the group's baselines, δ_c = L_c − L̄, κ = Δλ/4E (per km,
    ``OSC_PHASE_COEFF``), y = 2κ and S = Σ s_c,

        Σ_c s_c cos²(κ L_c) = S/2 + ½ Re[e^{iyL̄} Σ_c s_c e^{iyδ_c}]
                            = S/2 + [(1 − t²) A/2 − t B] / (1 + t²),   t = tan(κ L̄),
        A = Σ_c s_c cos(yδ_c) = Σ_k (−1)ᵏ y²ᵏ m₂ₖ/(2k)!,
        B = Σ_c s_c sin(yδ_c) = Σ_k (−1)ᵏ y²ᵏ⁺¹ m₂ₖ₊₁/(2k+1)!,   mⱼ = Σ_c s_c δ_cʲ,

    exact up to the truncated tail, bounded by Σ|s_c| · Σ_{j>J} θʲ/j!, θ = max |y| · max |δ_c|
    (``MAX_SPREAD``). For cores at one site (JUNO's eight at 52.1–52.8 km: θ ≤ 1.3 rad, J ≤ 19)
    this costs a fixed number of passes whatever the number of cores.
    """

    def __init__(self, baselines: Array, weight: Array, inv_e: Array) -> None:
        self.cores = baselines.size
        self.phase = OSC_PHASE_COEFF * baselines[:, None] * inv_e[None, :]  # per eV² of Δλ
        self.weight = np.ascontiguousarray(weight)  # (C_g, n): s_c
        self.total = weight.sum(axis=0)  # S
        self.half_total = 0.5 * self.total
        self.rate = 2.0 * OSC_PHASE_COEFF * inv_e  # y per eV² of Δλ
        self.max_rate = float(self.rate.max()) if self.rate.size else 0.0
        centre = 0.5 * (baselines.min() + baselines.max()) if self.cores else 0.0
        self.centre_phase = OSC_PHASE_COEFF * centre * inv_e  # κ L̄ per eV² of Δλ
        self.delta = baselines - centre
        self.spread = float(np.abs(self.delta).max()) if self.cores else 0.0
        self.abs_weight = float(np.abs(weight).sum(axis=0).max()) if weight.size else 0.0
        # Weights constant in E to rounding (cores with one fuel mix, as JUNO's, whose shares
        # vary by ~5 ulp from node to node): the moments are numbers and the expansion adds
        # scalars (~12 % faster overall) — a change below 32 ulp of S.
        spread = np.ptp(weight, axis=1) if weight.size else np.zeros(0)
        flat = np.all(spread <= 32.0 * np.finfo(np.float64).eps * np.abs(weight).max(axis=1))
        self._moment_weight = weight.mean(axis=1) if weight.size and flat else self.weight
        self._cos: list[Array] = []  # (−1)ᵏ m₂ₖ / (2 (2k)!)
        self._sin: list[Array] = []  # (−1)ᵏ m₂ₖ₊₁ / (2k+1)!
        self._lock = threading.Lock()  # a cached site is shared between threads

    def coefficients(self, order: int) -> tuple[list[Array], list[Array]]:
        """The Taylor coefficients of A/2 and B up to y^order (computed once, as needed)."""
        with self._lock:
            return self._grow(order)

    def _grow(self, order: int) -> tuple[list[Array], list[Array]]:
        while 2 * len(self._cos) <= order:
            k = len(self._cos)
            m_even = np.asarray(self.delta ** (2 * k) @ self._moment_weight)
            m_odd = np.asarray(self.delta ** (2 * k + 1) @ self._moment_weight)
            sign = -1.0 if k % 2 else 1.0
            self._cos.append(m_even * (sign / (2.0 * math.factorial(2 * k))))
            self._sin.append(m_odd * (sign / math.factorial(2 * k + 1)))
        return self._cos[: order // 2 + 1], self._sin[: (order + 1) // 2]

    def order(self, gap_max: float, values: int) -> int | None:
        """Expansion order J for a tile of ``values`` values whose gap Δλ (eV²) is at most
        ``gap_max`` in size, or None where the per-core sum is cheaper (or the expansion would
        need more than ``MAX_ORDER`` terms)."""
        if self.cores < 2 or self.abs_weight == 0.0:
            return None
        theta = gap_max * self.max_rate * self.spread
        if not math.isfinite(theta):
            return None
        order = int(np.searchsorted(MAX_SPREAD, theta))  # first J with θ ≤ MAX_SPREAD[J]
        if order > MAX_ORDER:
            return None
        expansion = (16 + 2 * order) * (_CALL_NS + _PASS_NS * values)
        cores = _CORE_CALLS * _CALL_NS + _CORE_NS * values * self.cores
        return order if expansion < cores else None


class _Scratch:
    """Work arrays reused by every tile: per-core (C, b, n) and five (b, n)."""

    def __init__(self, cores: int, rows: int, cols: int) -> None:
        self.cores = np.empty((cores, rows, cols))
        self.flat = np.empty((5, rows, cols))

    def view(self, rows: int, cols: slice) -> tuple[Array, tuple[Array, ...]]:
        """The scratch arrays for a tile of ``rows`` points and the energies ``cols``."""
        width = cols.stop - cols.start
        return self.cores[:, :rows, :width], tuple(self.flat[:, :rows, :width])


def _vacuum_tile(
    s12: Array, s13: Array, d21: Array, d31: Array
) -> tuple[tuple[Array, Array, Array], tuple[Array, Array, Array]]:
    """Electron-row weights and eigenvalue gaps (λ₂−λ₁, λ₃−λ₁, λ₃−λ₂) in vacuum, (b, 1)."""
    w = OscillationParameters(s12, s13, d21, d31).electron_row()
    return (w[0], w[1], w[2]), (d21, d31, d31 - d21)


def _matter_tile(
    potential: Array, s12: Array, s13: Array, d21: Array, d31: Array
) -> tuple[tuple[Array, Array, Array], tuple[Array, Array, Array]]:
    """Weights |Ũₑᵢ|² and gaps (λ_mid − λ_lo, λ_hi − λ_lo, λ_hi − λ_mid) of M = 2E·H for ν̄ in
    constant matter, (b, n), for potentials A (n,) eV² and parameters (b, 1).

    The algorithm of ``oscillation.matter_eigensystem`` (trigonometric roots of the cubic,
    eigenvector–eigenvalue identity, ``stable_eigensystem`` where a pair is close) written in
    the variable that carries all the E dependence: only M₀₀ = M₀₀(A = 0) + A depends on E, and
    with T = M₁₁ + M₂₂, h = (M₁₁ − M₂₂)/2, u = M₀₀ − T/2, D = M − q·1 (q = tr M / 3):

        9p² = tr D² · 3/2 = u² + 3(h² + M₀₁² + M₀₂² + M₁₂²),
        det D = 2u³/27 + βu + γ,  β = (M₀₁² + M₀₂²)/3 − 2(h² + M₁₂²)/3,
                                  γ = h(M₀₁² − M₀₂²) + 2 M₀₁M₀₂M₁₂,

    cos 3φ = det D / 2p³; eigenvalues minus T/2: u/3 + 2p cos(φ − 2πk/3), i.e. with
    a = p cos φ, b = √3 p sin φ: hi = u/3 + 2a, mid = u/3 − a + b, lo = u/3 − a − b, so the
    gaps are 2b, 3a + b, 3a − b (no cancellation of q); the minor's eigenvalues minus T/2 are
    ±ρ, ρ = √(h² + M₁₂²). cos φ, sin φ from t = tan(φ/2) (module docstring on tan). Terms
    without E are computed once per parameter point, the rest in place.
    """
    c12sq, c13sq = 1.0 - s12, 1.0 - s13
    sn12c12 = np.sqrt(s12 * c12sq)
    sn13, cs13 = np.sqrt(s13), np.sqrt(c13sq)
    # M = R13 R12 diag(0, d21, d31) R12ᵀ R13ᵀ + diag(A, 0, 0), as in matter_eigensystem.
    m00_vacuum = c13sq * s12 * d21 + s13 * d31
    m01 = cs13 * sn12c12 * d21
    m02 = sn13 * cs13 * (d31 - s12 * d21)
    m11 = c12sq * d21
    m12 = -sn13 * sn12c12 * d21
    m22 = c13sq * d31 + s13 * s12 * d21
    half_trace = 0.5 * (m11 + m22)
    h = 0.5 * (m11 - m22)
    h2_m12 = h**2 + m12**2
    rho = np.sqrt(h2_m12)
    k0 = 3.0 * (h2_m12 + m01**2 + m02**2)
    beta = 13.5 * ((m01**2 + m02**2) / 3.0 - 2.0 * h2_m12 / 3.0)
    gamma = 13.5 * (h * (m01**2 - m02**2) + 2.0 * m01 * m02 * m12)

    u = (m00_vacuum - half_trace) + potential  # (b, n)
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 only where refined below
        s = u * u
        cos3 = s + beta
        cos3 *= u
        cos3 += gamma  # 13.5 det D
        s += k0  # 9p²
        p = np.sqrt(s)
        s *= p  # 27p³
        cos3 /= s  # det D / 2p³
        np.clip(cos3, -1.0, 1.0, out=cos3)
        half_phi = np.arccos(cos3, out=cos3)
        half_phi *= 1.0 / 6.0
        t = np.tan(half_phi, out=half_phi)
        p *= 1.0 / 3.0
        r = np.multiply(t, t, out=s)
        a = 1.0 - r
        r += 1.0
        a /= r
        a *= p  # p cos φ
        b = np.multiply(t, 2.0 * _SQRT3, out=t)
        b /= r
        b *= p  # √3 p sin φ
        g01 = 2.0 * b
        g02 = 3.0 * a
        g12 = np.subtract(g02, b, out=r)
        g02 += b
        u *= 1.0 / 3.0
        hi = u + 2.0 * a
        mid = u - a
        lo = np.subtract(mid, b, out=u)
        mid += b
        # Electron-row weights by the identity (oscillation._identity_weights), λ − μ = ℓ ∓ ρ.
        w_hi = _identity_numerator(hi, rho)
        w_hi /= g02 * g12
        w_mid = _identity_numerator(mid, rho)
        w_mid /= -(g01 * g12)
        w_lo = _identity_numerator(lo, rho)
        w_lo /= g01 * g02
        # Close pairs are refined as in matter_eigensystem; the full mask only where the
        # tile-wide bound (one reduction per gap) cannot rule them out.
        bound = CLOSE_PAIR * float(np.max(g02))
        if float(np.min(g01)) > bound and float(np.min(g12)) > bound:
            refine = None
        else:
            refine = ~(np.minimum(g01, g12) > CLOSE_PAIR * g02)
    if refine is not None and np.any(refine):
        m00 = np.broadcast_to(m00_vacuum + potential, refine.shape)
        sub = [np.broadcast_to(x, refine.shape)[refine] for x in (m00, m01, m02, m11, m12, m22)]
        (sw_lo, sw_mid, sw_hi), (sl_lo, sl_mid, sl_hi) = stable_eigensystem(*sub)
        for x, y in (
            (w_lo, sw_lo),
            (w_mid, sw_mid),
            (w_hi, sw_hi),
            (g01, sl_mid - sl_lo),
            (g02, sl_hi - sl_lo),
            (g12, sl_hi - sl_mid),
        ):
            x[refine] = y
    return (w_lo, w_mid, w_hi), (g01, g02, g12)


def _identity_numerator(shifted: Array, rho: Array) -> Array:
    """(λ − μ₁)(λ − μ₂) = (ℓ + ρ)(ℓ − ρ) for ℓ = λ − T/2, μ = T/2 ∓ ρ (a fresh array)."""
    out = shifted - rho
    out *= shifted + rho
    return out


def _sum_tile(
    out: Array,
    weights: tuple[Array, Array, Array],
    gaps: tuple[Array, Array, Array],
    sites: Sequence[_Site],
    scratch: tuple[Array, tuple[Array, ...]],
) -> None:
    """out[g] = S_g (1 − Σ c) + Σ_pairs c · Σ_{c∈g} s_c cos² x_c on one tile (module
    docstring), each pair's core sum by the site expansion or core by core, whichever is
    cheaper (``_Site.order``). ``out`` (G, b, n) is written."""
    w0, w1, w2 = weights
    work, flat = scratch
    pairs = ((w0, w1, gaps[0]), (w0, w2, gaps[1]), (w1, w2, gaps[2]))
    amps = [4.0 * wi * wj for wi, wj, _ in pairs]
    missing = 1.0 - (amps[0] + amps[1] + amps[2])
    largest = [max(-float(gap.min()), float(gap.max())) for _, _, gap in pairs]  # max |gap|
    for g, site in enumerate(sites):
        acc = out[g]
        np.multiply(missing, site.total, out=acc)
        for amp, (_, _, gap), gap_max in zip(amps, pairs, largest, strict=True):
            order = site.order(gap_max, acc.size)
            if order is None:
                _core_sum(acc, amp, gap, site, work[: site.cores], flat[0])
            else:
                _site_sum(acc, amp, gap, site, order, flat)


def _core_sum(acc: Array, amp: Array, gap: Array, site: _Site, work: Array, tmp: Array) -> None:
    """acc += amp · Σ_c s_c cos²(Δλ L_c/4E), one core at a time (cos² = 1/(1 + tan²))."""
    np.multiply(site.phase[:, None, :], gap[None], out=work)
    np.tan(work, out=work)
    np.multiply(work, work, out=work)
    work += 1.0
    np.divide(site.weight[:, None, :], work, out=work)
    np.add.reduce(work, axis=0, out=tmp)
    tmp *= amp
    acc += tmp


def _site_sum(
    acc: Array, amp: Array, gap: Array, site: _Site, order: int, flat: tuple[Array, ...]
) -> None:
    """acc += amp · Σ_c s_c cos²(Δλ L_c/4E) by the expansion of ``_Site`` to order ``order``."""
    y, z, t, a, b = flat
    cos_coef, sin_coef = site.coefficients(order)
    np.multiply(gap, site.rate, out=y)
    np.multiply(y, y, out=z)
    np.multiply(gap, site.centre_phase, out=t)
    np.tan(t, out=t)
    _horner(a, z, cos_coef)
    if sin_coef:
        _horner(b, z, sin_coef)
        b *= y
        b *= t  # t B
    else:
        b[...] = 0.0
    np.multiply(t, t, out=y)  # t²
    np.subtract(1.0, y, out=z)
    a *= z
    a -= b
    y += 1.0
    a /= y
    a += site.half_total
    a *= amp
    acc += a


def _horner(out: Array, z: Array, coef: Sequence[Array]) -> None:
    """out = Σ_k coef[k] zᵏ (each coef[k] (n,) broadcast over the rows of z)."""
    out[...] = coef[-1]
    for c in coef[-2::-1]:
        out *= z
        out += c
