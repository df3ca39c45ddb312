"""Per-charge-state lifetimes and quantum yields shared by the charge model and the simulator."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["StateTable"]


@dataclass(frozen=True, eq=False)
class StateTable:
    """Lifetime and emission quantum yield of each multiexciton state of each charge state.

    Row ``n`` is the charge number (n extra electrons, 0 = neutral); column ``m - 1`` is the
    number of e-h pairs m = 1 (X^{n-}), 2 (XX^{n-}), 3 (XXX^{n-}).

    Attributes
    ----------
    tau_ns : ndarray, shape (n_max + 1, 3)
        Total lifetime of the state, ns.
    qy : ndarray, shape (n_max + 1, 3)
        Probability that the state's decay emits a photon (radiative branching ratio).
    """

    tau_ns: np.ndarray
    qy: np.ndarray

    def __post_init__(self):
        tau = np.asarray(self.tau_ns, float)
        qy = np.asarray(self.qy, float)
        if tau.ndim != 2 or tau.shape[1] != 3 or qy.shape != tau.shape:
            raise ValueError(f"tau_ns {tau.shape} and qy {qy.shape} must both be (n_max + 1, 3)")
        if np.any(~(tau > 0)):
            raise ValueError("tau_ns must be > 0 everywhere")
        if np.any((qy < 0) | (qy > 1)):
            raise ValueError("qy must be in [0, 1]")
        object.__setattr__(self, "tau_ns", tau)
        object.__setattr__(self, "qy", qy)

    @property
    def n_max(self) -> int:
        """Largest charge number in the table."""
        return self.tau_ns.shape[0] - 1

    @classmethod
    def constant(cls, tau_x_ns, qy_x, tau_xx_ns, qy_xx, tau_xxx_ns=None, qy_xxx=None, n_max=0):
        """The same X / XX (/ XXX) values for every charge state 0..n_max."""
        tau_xxx_ns = tau_xx_ns / 2 if tau_xxx_ns is None else tau_xxx_ns
        qy_xxx = qy_xx if qy_xxx is None else qy_xxx
        tau = np.tile([tau_x_ns, tau_xx_ns, tau_xxx_ns], (n_max + 1, 1))
        qy = np.tile([qy_x, qy_xx, qy_xxx], (n_max + 1, 1))
        return cls(tau, qy)
