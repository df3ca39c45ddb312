"""Photon statistics: intensity trajectories, decays, sliced decays and FLID, pulsed g2 and
photon pairs. Each module is a thin validating wrapper around the numba kernels in
:mod:`qrspec.stats._kernels`; results are frozen dataclasses."""
