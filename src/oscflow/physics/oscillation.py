"""Three-flavour ν̄ₑ survival probability in vacuum and in constant-density matter.

Parameters follow PDG 2022 (R.L. Workman et al., PTEP 2022, 083C01, normal ordering):
sin²θ₁₂, sin²θ₁₃, Δm²₂₁ (eV²) and |Δm²₃₂| (eV²) with an explicit mass ordering:
normal: Δm²₃₁ = |Δm²₃₂| + Δm²₂₁; inverted: Δm²₃₂ = −|Δm²₃₂|, Δm²₃₁ = −|Δm²₃₂| + Δm²₂₁.
P(ν̄ₑ→ν̄ₑ) depends on neither θ₂₃ nor δ_CP, in vacuum or in constant matter (both act in the
μ–τ block, which commutes with the electron-flavour matter potential).

Matter: the Hamiltonian 2E·H = U diag(0, Δm²₂₁, Δm²₃₁) Uᵀ − diag(A, 0, 0) for antineutrinos,
A = 2√2 G_F Nₑ E (see ``constants.MATTER_POTENTIAL_COEFF``), is diagonalised in closed form so
that the whole computation vectorises over energies and parameter batches: eigenvalues by the
trigonometric solution of the cubic, electron-row weights |Ũₑᵢ|² by the eigenvector–eigenvalue
identity (Denton, Parke, Zhang, Bull. AMS 59, 31 (2022)). Both fail at and near degenerate
eigenvalues (e.g. Δm²₂₁ = Δm²₃₂ = 0 in matter, allowed by the bounds: the identity is 0/0,
the close roots are off by ~√ε); there the eigensystem is recomputed by a hybrid that is
exact at any degeneracy: the far root, its eigenvector by a cross product, and a 2×2
diagonalisation of the remaining pair (as in J. Kopp, Int. J. Mod. Phys. C 19, 523 (2008)).

All functions broadcast: parameters may be arrays of shape (B, 1) against energies (N,).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeGuard

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .constants import MATTER_POTENTIAL_COEFF, OSC_PHASE_COEFF

Ordering = Literal["normal", "inverted"]
ORDERINGS: tuple[str, ...] = ("normal", "inverted")


def is_ordering(value: object) -> TypeGuard[Ordering]:
    """Whether ``value`` is one of ``ORDERINGS`` (narrows it to ``Ordering``)."""
    return value in ORDERINGS


# Earth's crust along the JUNO baselines: 2.45 g/cm³ (DESIGN; e.g. Li, Wang, Xing,
# Chin. Phys. C 40, 091001 (2016)); electron fraction 0.5 for crustal rock.
CRUST_DENSITY = 2.45  # g/cm³
CRUST_ELECTRON_FRACTION = 0.5


@dataclass(frozen=True)
class OscillationParameters:
    """Oscillation parameters; each may be a float or an array broadcastable against energies."""

    sin2_th12: ArrayLike
    sin2_th13: ArrayLike
    dm2_21: ArrayLike  # eV²
    dm2_32: ArrayLike  # |Δm²₃₂|, eV²
    ordering: Ordering = "normal"

    def __post_init__(self) -> None:
        if self.ordering not in ORDERINGS:
            msg = f"ordering {self.ordering!r} is not one of {ORDERINGS}"
            raise ValueError(msg)

    def splittings(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(Δm²₂₁, Δm²₃₁) in eV², signed according to the ordering."""
        d21 = np.asarray(self.dm2_21, dtype=np.float64)
        d32 = np.abs(np.asarray(self.dm2_32, dtype=np.float64))
        d31 = d32 + d21 if self.ordering == "normal" else -d32 + d21
        return d21, d31

    def electron_row(self) -> tuple[NDArray[np.float64], ...]:
        """Vacuum |Uₑ₁|², |Uₑ₂|², |Uₑ₃|²."""
        s12 = np.asarray(self.sin2_th12, dtype=np.float64)
        s13 = np.asarray(self.sin2_th13, dtype=np.float64)
        c13 = 1.0 - s13
        return c13 * (1.0 - s12), c13 * s12, s13


def _probability_from_eigen(
    weights: tuple[NDArray[np.float64], ...],
    eigenvalues: tuple[NDArray[np.float64], ...],
    l_over_e: NDArray[np.float64],
) -> NDArray[np.float64]:
    """P = 1 − 4 Σᵢ<ⱼ wᵢ wⱼ sin²((λⱼ − λᵢ) L / 4E), λ in eV², L/E in km/MeV, clipped to
    [0, 1] (rounding of the weights can overshoot by ~1e-15, e.g. P = 1 for θ₁₂ = θ₁₃ = 0)."""
    prob = 1.0
    for i in range(3):
        for j in range(i + 1, 3):
            phase = OSC_PHASE_COEFF * (eigenvalues[j] - eigenvalues[i]) * l_over_e
            prob = prob - 4.0 * weights[i] * weights[j] * np.sin(phase) ** 2
    out = np.asarray(prob, dtype=np.float64)  # a fresh array: clipped in place
    return np.clip(out, 0.0, 1.0, out=out)


def matter_eigensystem(
    energy: ArrayLike,
    params: OscillationParameters,
    density: float = CRUST_DENSITY,
    electron_fraction: float = CRUST_ELECTRON_FRACTION,
) -> tuple[tuple[NDArray[np.float64], ...], tuple[NDArray[np.float64], ...]]:
    """Electron-row weights |Ũₑᵢ|² and eigenvalues (eV²) of 2E·H for ν̄ in constant matter."""
    e = np.asarray(energy, dtype=np.float64)
    d21, d31 = params.splittings()
    s12 = np.asarray(params.sin2_th12, dtype=np.float64)
    s13 = np.asarray(params.sin2_th13, dtype=np.float64)
    a = -MATTER_POTENTIAL_COEFF * density * electron_fraction * e  # antineutrino sign

    # M = R13 R12 diag(0, d21, d31) R12ᵀ R13ᵀ + diag(a, 0, 0), real symmetric.
    c12sq, c13sq = 1.0 - s12, 1.0 - s13
    sn12c12 = np.sqrt(s12 * c12sq)
    sn13, cs13 = np.sqrt(s13), np.sqrt(c13sq)
    # Rows of U = R13 R12 (θ₂₃ = δ = 0): U_e = (c12 c13, s12 c13, s13), U_μ = (−s12, c12, 0),
    # U_τ = (−c12 s13, −s12 s13, c13).
    m00 = c13sq * s12 * d21 + s13 * d31 + a
    m01 = cs13 * sn12c12 * d21
    m02 = sn13 * cs13 * (d31 - s12 * d21)
    m11 = c12sq * d21
    m12 = -sn13 * sn12c12 * d21
    m22 = c13sq * d31 + s13 * s12 * d21

    m = (m00, m01, m02, m11, m12, m22)
    lams: tuple[NDArray[np.float64], ...]
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 only where refined below
        lams = _trigonometric_roots(*m)
        weights = _identity_weights(m, lams)
    # The trigonometric roots lose accuracy for a close pair (errors ~ε·p/gap, ~√ε·p at a
    # tie: arccos near ±1) and the identity is 0/0 at a tie (Δm²₂₁ = Δm²₃₂ = 0 in matter:
    # eigenvalues A, 0, 0). Where the closer gap is below 1 % of the spread (never at JUNO's
    # sampled parameters, where it is Δm²₂₁/Δm²₃₁ ≈ 3 %), or anything came out NaN, the
    # eigensystem is recomputed by a method stable at any degeneracy.
    lo, mid, hi = lams
    refine = ~(np.minimum(mid - lo, hi - mid) > CLOSE_PAIR * (hi - lo))
    refine &= np.isfinite(m00) & np.isfinite(m11) & np.isfinite(m22)
    if np.any(refine):
        shape = refine.shape
        sub = [np.broadcast_to(x, shape)[refine] for x in m]
        sub_w, sub_l = stable_eigensystem(*sub)
        weights = tuple(_patched(x, refine, y) for x, y in zip(weights, sub_w, strict=True))
        lams = tuple(_patched(x, refine, y) for x, y in zip(lams, sub_l, strict=True))
    return weights, lams


# Relative gap below which a pair of eigenvalues counts as close (see matter_eigensystem).
CLOSE_PAIR = 1e-2


def _patched(
    values: NDArray[np.float64], where: NDArray[np.bool_], new: NDArray[np.float64]
) -> NDArray[np.float64]:
    out = np.array(np.broadcast_to(values, where.shape), dtype=np.float64)
    out[where] = new
    return out


def _trigonometric_roots(
    m00: NDArray[np.float64],
    m01: NDArray[np.float64],
    m02: NDArray[np.float64],
    m11: NDArray[np.float64],
    m12: NDArray[np.float64],
    m22: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Eigenvalues λ_lo ≤ λ_mid ≤ λ_hi of the real symmetric 3×3 matrix (trigonometric
    solution of the characteristic cubic)."""
    q = (m00 + m11 + m22) / 3.0
    p1 = m01**2 + m02**2 + m12**2
    p2 = (m00 - q) ** 2 + (m11 - q) ** 2 + (m22 - q) ** 2 + 2.0 * p1
    p = np.sqrt(p2 / 6.0)
    b00, b11, b22 = (m00 - q) / p, (m11 - q) / p, (m22 - q) / p
    b01, b02, b12 = m01 / p, m02 / p, m12 / p
    det_b = (
        b00 * (b11 * b22 - b12**2) - b01 * (b01 * b22 - b12 * b02) + b02 * (b01 * b12 - b11 * b02)
    )
    phi = np.arccos(np.clip(det_b / 2.0, -1.0, 1.0)) / 3.0
    lam_hi = q + 2.0 * p * np.cos(phi)
    lam_lo = q + 2.0 * p * np.cos(phi + 2.0 * np.pi / 3.0)
    lam_mid = 3.0 * q - lam_hi - lam_lo
    return lam_lo, lam_mid, lam_hi


def _identity_weights(
    m: tuple[NDArray[np.float64], ...], lams: tuple[NDArray[np.float64], ...]
) -> tuple[NDArray[np.float64], ...]:
    """|Ũₑᵢ|² Πⱼ≠ᵢ (λᵢ − λⱼ) = Πₖ (λᵢ − μₖ), μ the eigenvalues of the minor M[1:,1:]
    (eigenvector–eigenvalue identity, Denton, Parke, Zhang, Bull. AMS 59, 31 (2022))."""
    _, _, _, m11, m12, m22 = m
    half_tr = 0.5 * (m11 + m22)
    rad = np.sqrt(0.25 * (m11 - m22) ** 2 + m12**2)
    mu1, mu2 = half_tr - rad, half_tr + rad
    weights = []
    for i in range(3):
        j, k = (x for x in range(3) if x != i)
        weights.append(
            (lams[i] - mu1) * (lams[i] - mu2) / ((lams[i] - lams[j]) * (lams[i] - lams[k]))
        )
    return tuple(weights)


def stable_eigensystem(
    m00: NDArray[np.float64],
    m01: NDArray[np.float64],
    m02: NDArray[np.float64],
    m11: NDArray[np.float64],
    m12: NDArray[np.float64],
    m22: NDArray[np.float64],
) -> tuple[tuple[NDArray[np.float64], ...], tuple[NDArray[np.float64], ...]]:
    """Electron weights and eigenvalues (sorted) stable at any degeneracy: the eigenvalue
    farthest from the other two (accurate from the trigonometric solution), its eigenvector
    by a cross product of two rows of M − λ·1, and the remaining pair by an exact 2×2
    diagonalisation of M in the plane orthogonal to it (a hybrid as in J. Kopp,
    Int. J. Mod. Phys. C 19, 523 (2008)). At a tie the pair's split of the electron weight is
    arbitrary and harmless: their phases are equal."""
    with np.errstate(divide="ignore", invalid="ignore"):  # p = 0 (M = q·1): handled below
        lam_lo, lam_mid, lam_hi = _trigonometric_roots(m00, m01, m02, m11, m12, m22)
    q = (m00 + m11 + m22) / 3.0
    scalar = ~np.isfinite(lam_lo)  # only for M = q·1: all roots q
    lam_lo, lam_mid, lam_hi = (np.where(scalar, q, x) for x in (lam_lo, lam_mid, lam_hi))
    far_hi = (lam_mid - lam_lo) <= (lam_hi - lam_mid)
    lam_far = np.where(far_hi, lam_hi, lam_lo)
    m = ((m00, m01, m02), (m01, m11, m12), (m02, m12, m22))
    v = _far_eigenvector(m, lam_far)
    u1, u2 = _orthonormal_complement(v)
    m_u1, m_u2 = _matvec(m, u1), _matvec(m, u2)
    alpha, beta, delta = _dot(u1, m_u1), _dot(u1, m_u2), _dot(u2, m_u2)
    centre, half = 0.5 * (alpha + delta), np.hypot(0.5 * (alpha - delta), beta)
    t = 0.5 * np.arctan2(2.0 * beta, alpha - delta)  # λ₊'s eigenvector: cos t·u1 + sin t·u2
    c, s = np.cos(t), np.sin(t)
    w_plus = (c * u1[0] + s * u2[0]) ** 2
    w_minus = (c * u2[0] - s * u1[0]) ** 2
    w_far = v[0] ** 2
    lam_plus, lam_minus = centre + half, centre - half
    # Sorted (lo, mid, hi) like the fast path, each weight paired with its eigenvalue.
    lams = (
        np.where(far_hi, lam_minus, lam_far),
        np.where(far_hi, lam_plus, lam_minus),
        np.where(far_hi, lam_far, lam_plus),
    )
    weights = (
        np.where(far_hi, w_minus, w_far),
        np.where(far_hi, w_plus, w_minus),
        np.where(far_hi, w_far, w_plus),
    )
    return weights, lams


Vec = tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]


def _dot(x: Vec, y: Vec) -> NDArray[np.float64]:
    return x[0] * y[0] + x[1] * y[1] + x[2] * y[2]


def _cross(x: Vec, y: Vec) -> Vec:
    return (x[1] * y[2] - x[2] * y[1], x[2] * y[0] - x[0] * y[2], x[0] * y[1] - x[1] * y[0])


def _matvec(m: tuple[Vec, Vec, Vec], x: Vec) -> Vec:
    return (_dot(m[0], x), _dot(m[1], x), _dot(m[2], x))


def _far_eigenvector(m: tuple[Vec, Vec, Vec], lam: NDArray[np.float64]) -> Vec:
    """Unit eigenvector of the symmetric ``m`` for its simple eigenvalue ``lam``: the longest
    cross product of two rows of m − lam·1 (they span the plane orthogonal to it). For
    m = q·1 (no such plane) any vector is an eigenvector: the electron axis is returned."""
    r: list[Vec] = [
        (m[0][0] - lam, m[0][1], m[0][2]),
        (m[1][0], m[1][1] - lam, m[1][2]),
        (m[2][0], m[2][1], m[2][2] - lam),
    ]
    best = _cross(r[0], r[1])
    best_n = _dot(best, best)
    for x, y in ((0, 2), (1, 2)):
        cand = _cross(r[x], r[y])
        n = _dot(cand, cand)
        take = n > best_n
        best = (
            np.where(take, cand[0], best[0]),
            np.where(take, cand[1], best[1]),
            np.where(take, cand[2], best[2]),
        )
        best_n = np.where(take, n, best_n)
    ok = best_n > 0.0
    norm = np.sqrt(np.where(ok, best_n, 1.0))
    one, zero = np.ones_like(norm), np.zeros_like(norm)
    return (
        np.where(ok, best[0] / norm, one),
        np.where(ok, best[1] / norm, zero),
        np.where(ok, best[2] / norm, zero),
    )


def _orthonormal_complement(v: Vec) -> tuple[Vec, Vec]:
    """Two unit vectors orthogonal to the unit ``v`` and to each other: u1 = v × (the
    coordinate axis least aligned with v), normalised (|v × axis|² ≥ 2/3), u2 = v × u1."""
    ax = [np.abs(x) for x in v]
    k0 = (ax[0] <= ax[1]) & (ax[0] <= ax[2])
    k1 = ~k0 & (ax[1] <= ax[2])
    zero = np.zeros_like(v[0])
    # v × e0 = (0, v2, −v1); v × e1 = (−v2, 0, v0); v × e2 = (v1, −v0, 0)
    w = (
        np.where(k0, zero, np.where(k1, -v[2], v[1])),
        np.where(k0, v[2], np.where(k1, zero, -v[0])),
        np.where(k0, -v[1], np.where(k1, v[0], zero)),
    )
    n = np.sqrt(_dot(w, w))
    u1 = (w[0] / n, w[1] / n, w[2] / n)
    return u1, _cross(v, u1)


def survival_probability(
    energy: ArrayLike,
    baseline_km: ArrayLike,
    params: OscillationParameters,
    matter: bool = False,
    density: float = CRUST_DENSITY,
    electron_fraction: float = CRUST_ELECTRON_FRACTION,
) -> NDArray[np.float64]:
    """P(ν̄ₑ → ν̄ₑ) at ``energy`` (MeV) after ``baseline_km`` (km), vacuum or constant matter."""
    e = np.asarray(energy, dtype=np.float64)
    l_over_e = np.asarray(baseline_km, dtype=np.float64) / e
    if matter:
        weights, lams = matter_eigensystem(e, params, density, electron_fraction)
    else:
        d21, d31 = params.splittings()
        weights = params.electron_row()
        lams = (np.zeros_like(d21), d21, d31)
    return _probability_from_eigen(weights, lams, l_over_e)
