"""Physical constants, each with its source.

Particle masses and couplings: CODATA 2018 / PDG 2022 (R.L. Workman et al., PTEP 2022, 083C01).
"""

import math

M_ELECTRON = 0.51099895000  # MeV, CODATA 2018
M_PROTON = 938.27208816  # MeV, CODATA 2018
M_NEUTRON = 939.56542052  # MeV, CODATA 2018
DELTA_NP = M_NEUTRON - M_PROTON  # MeV, 1.29333
HBAR_C_MEV_FM = 197.3269804  # MeV·fm, CODATA 2018
ALPHA_EM = 7.2973525693e-3  # fine-structure constant, CODATA 2018
G_FERMI = 1.1663788e-5  # GeV⁻², PDG 2022 (G_F/(ħc)³)
AVOGADRO = 6.02214076e23  # mol⁻¹, SI 2019 exact
MEV_TO_JOULE = 1.602176634e-13  # J/MeV, SI 2019 exact
SECONDS_PER_DAY = 86400.0
DAYS_PER_YEAR = 365.25  # Julian year
KM_TO_CM = 1.0e5

# IBD threshold E_ν = ((m_n + m_e)² − m_p²) / (2 m_p), MeV (Strumia–Vissani 2003, eq. 5).
IBD_THRESHOLD = ((M_NEUTRON + M_ELECTRON) ** 2 - M_PROTON**2) / (2.0 * M_PROTON)

# Δm² L / (4E) = OSC_PHASE_COEFF · Δm²[eV²] · L[km] / E[MeV] = 1266.93 · …, i.e. the familiar
# 1.267 Δm² L[km]/E[GeV]: 1e3 m/km / (4 ħc[eV·m] · 1e6 eV/MeV), ħc = 197.3269804e-9 eV·m.
OSC_PHASE_COEFF = 1.0e3 / (4.0 * HBAR_C_MEV_FM * 1.0e-9 * 1.0e6)

# Matter potential A = 2√2 G_F N_e E for ν (negative for ν̄), in eV² per (MeV · g/cm³ · Y_e):
# N_e = Y_e ρ N_A per cm³; √2 G_F (ħc)³ N_A per g/cm³ = 7.63e-14 eV (e.g. Akhmedov,
# hep-ph/0001264, eq. 3.9: A = 1.52e-4 eV² · Y_e ρ[g/cm³] · E[GeV]).
_HBARC_CM_GEV = HBAR_C_MEV_FM * 1.0e-13 * 1.0e-3  # GeV·cm
MATTER_POTENTIAL_COEFF = (
    2.0 * math.sqrt(2.0) * G_FERMI * _HBARC_CM_GEV**3 * AVOGADRO * 1.0e9 * 1.0e6
)  # eV² per (MeV · g/cm³), i.e. 2√2 G_F N_A (ħc)³ · 1 MeV in eV
