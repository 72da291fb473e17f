"""Shared test constants."""

# PDG 2022 normal ordering (R.L. Workman et al., PTEP 2022, 083C01).
NOMINAL = {"sin2_th12": 0.307, "sin2_th13": 0.0220, "dm2_21": 7.53e-5, "dm2_32": 2.453e-3}
