"""Photon statistics: trajectories, decays, FLID, pulsed and CW g2, pairs, the HBT set-up.

Intensity trajectories, decays, sliced decays and FLID, pulsed and CW g2, photon pairs, and the HBT
set-up from the data (:mod:`qrspec.stats.hbt`: detectors, pulsed or CW, zero-delay peak). Each
module is a thin validating wrapper around the numba kernels in :mod:`qrspec.stats._kernels`;
results are frozen dataclasses. Every grid has a documented size cap (``MAX_*`` module constants)
past which it is coarsened or the option refused; argument checks and the seconds-to-ticks rule
live in :mod:`qrspec.validate`.
"""
