"""Exact physics: reactor flux, IBD, oscillation, detector response, backgrounds.

Pure numpy/scipy. Units: energies in MeV, lengths in km unless a name says otherwise,
mass splittings in eV², cross-sections in cm², times in seconds or days as named.
"""
