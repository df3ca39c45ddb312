"""The one parameter set of the emitter and its charging-associated Auger model.

:class:`ChargeModelConfig` is frozen and JSON-round-trippable. It selects the variant
(methods.md §1.5, §1.8) and holds every neutral input and scaling parameter. The models
(:mod:`qrspec.charging.forward`, :mod:`qrspec.charging.inverse`), the simulator
(``qrspec.simulate.EmitterConfig`` subclasses it and adds an explicit lifetime table) and the
analysis (``qrspec.analysis.config.ChargeModelParams`` subclasses it: there the two neutral
lifetimes default to ``None``, "measured from the particle", and user values carry errors)
all use it, so there is one set of defaults:

* methods.md §1.8: capped (band-edge) variant, electron-acceptor fraction ``eps = 0.5``,
  higher-level acceptor weight ``gamma = 1``, neutral exciton QY 1 (k_nr0 = 0), radiative
  scalings ``beta_xminus = 2`` and ``beta_xx = 4``, radiative overlap ``xi_rad = 0``, k_nr0 on
  X-type states only;
* neutral lifetimes ``tau_x0_ns = 10`` and ``tau_a_xx0_ns = 13.9`` (the paper's neutral
  biexciton Auger lifetime). Before the merge of the parameter sets the charge model said
  6 ns (methods.md §6.1) and the simulator 10 ns; 10 ns is kept because every simulated
  population, preset, data sample and demo was made with it, and it lies in the 7-10 ns range
  that methods.md §9.5 quotes for neutral rods. Override both per particle.

This module holds data only: it imports nothing from the model modules (the forward model is
``qrspec.charging.forward.forward(config, n)``), so there is no import circle.

Derived rates (all ns^-1) are properties: ``k_r_per_ns = qy_x0 / tau_x0_ns``,
``k_nr0_per_ns = (1 - qy_x0) / tau_x0_ns``, ``k_a_xx0_per_ns`` and the trion Auger rates
``a_n_per_ns = eps * k_a_xx0 / 2`` and ``a_p_per_ns = (1 - eps) * k_a_xx0 / 2``
(superposition principle ``k_A,XX = 2 A_n + 2 A_p``). When ``tau_a_xminus_ns`` and
``tau_a_xplus_ns`` are given instead, ``A_n`` and ``A_p`` come from them and
``k_A,XX = 2 A_n + 2 A_p``; eps is then derived and the ``eps`` field is ignored.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace

from qrspec.errors import QrspecError

__all__ = ["ChargeModelConfig", "VARIANTS"]

VARIANTS = ("capped", "uncapped", "power_law", "levels")

# default level ladder of the "levels" variant: two-fold (spin) levels, energies unused unless
# temperature_k is set (rods: closely spaced longitudinal levels, here 10 meV apart)
_DEFAULT_LEVELS = tuple((2, 10.0 * i) for i in range(40))


def _positive(name, value, allow_none=False):
    if value is None and allow_none:
        return
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise QrspecError(f"{name}={value!r} must be a finite number > 0")


def _in_range(name, value, lo, hi):
    if not isinstance(value, (int, float)) or not math.isfinite(value) or not lo <= value <= hi:
        raise QrspecError(f"{name}={value!r} must be in [{lo}, {hi}]")


@dataclass(frozen=True)
class ChargeModelConfig:
    """Charging-associated Auger model (methods.md §1.8), one frozen value object.

    Every rate is in ns^-1 and every lifetime in ns. Derived rates are properties.

    Parameters
    ----------
    variant : {"capped", "uncapped", "power_law", "levels"}
        ``capped`` (default): Pauli filling of two-fold band edges, extra electrons in higher
        levels, only band-edge pairs recombine (§1.5 Variant C). ``uncapped``: all carriers
        equivalent, the naive statistical scaling (Variant U). ``power_law``: the
        phenomenological ``k_A(XX^n-) = k_A,XX (1 + n/2)^p``, ``k_A(X^n-) = A_n n^q``.
        ``levels``: the general level-filling enumeration engine (§1.4) with ``levels_e``,
        ``levels_h`` and optional thermal averaging.
    tau_x0_ns : float or None
        Neutral exciton lifetime, ns (default 10). ``None``: not given (the analysis then
        measures it in the particle's neutral periods); the model cannot be evaluated then.
    qy_x0 : float
        Neutral exciton emission QY in (0, 1]; ``k_r = qy_x0 / tau_x0_ns`` and the
        charge-independent loss ``k_nr0 = (1 - qy_x0) / tau_x0_ns``.
    tau_a_xx0_ns : float or None
        Neutral biexciton Auger lifetime, ns (default 13.9). Give this or both trion Auger
        lifetimes; ``None`` with no trion lifetimes: not given (measured by the analysis).
    tau_a_xminus_ns, tau_a_xplus_ns : float or None
        Negative / positive trion Auger lifetimes (1/A_n, 1/A_p), ns.
    eps : float
        Electron-acceptor fraction A_n / (A_n + A_p) in [0, 1].
    gamma : float
        Auger-acceptor weight of an electron above the band edge (>= 0).
    gamma_h : float
        The same for a hole above the band edge (enters tri-excitons only).
    xi_rad : float
        Relative oscillator strength (0..1) of pairs that are not band-edge/band-edge
        (capped/levels).
    beta_xminus, beta_xx : float
        Radiative rate of X^{n-} (n >= 1) and of XX relative to k_r (counting values 2 and 4).
    power_p, power_q : float
        Exponents of the ``power_law`` variant (dimensionless).
    levels_e, levels_h : tuple of (degeneracy, energy_meV)
        Level ladders of the ``levels`` variant (filled in order; energies in meV).
    temperature_k : float or None
        Thermal averaging over configurations (``levels`` only), kelvin; None = ground
        configuration.
    sign : {"negative", "positive"}
        Sign of the extra charges; "positive" mirrors electrons and holes (eps -> 1 - eps).
    knr_all_states : bool
        Apply the charge-independent loss k_nr0 to XX-type states too (default: X-type only).
    """

    variant: str = "capped"
    tau_x0_ns: float | None = 10.0
    qy_x0: float = 1.0
    tau_a_xx0_ns: float | None = 13.9
    tau_a_xminus_ns: float | None = None
    tau_a_xplus_ns: float | None = None
    eps: float = 0.5
    gamma: float = 1.0
    gamma_h: float = 1.0
    xi_rad: float = 0.0
    beta_xminus: float = 2.0
    beta_xx: float = 4.0
    power_p: float = 1.5
    power_q: float = 1.0
    levels_e: tuple = _DEFAULT_LEVELS
    levels_h: tuple = _DEFAULT_LEVELS
    temperature_k: float | None = None
    sign: str = "negative"
    knr_all_states: bool = False

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise QrspecError(f"variant={self.variant!r} must be one of {VARIANTS}")
        _positive("tau_x0_ns", self.tau_x0_ns, allow_none=True)
        if not isinstance(self.qy_x0, (int, float)) or not 0 < self.qy_x0 <= 1:
            raise QrspecError(f"qy_x0={self.qy_x0!r} must be in (0, 1]")
        trions = (self.tau_a_xminus_ns, self.tau_a_xplus_ns)
        if any(t is not None for t in trions):
            if any(t is None for t in trions):
                raise QrspecError(
                    f"tau_a_xminus_ns={self.tau_a_xminus_ns!r} and tau_a_xplus_ns="
                    f"{self.tau_a_xplus_ns!r}: give both trion Auger lifetimes or neither")
            if self.tau_a_xx0_ns is not None:
                raise QrspecError(
                    f"tau_a_xx0_ns={self.tau_a_xx0_ns!r} given together with trion Auger "
                    "lifetimes; set tau_a_xx0_ns=None (it is 1/(2 A_n + 2 A_p))")
            _positive("tau_a_xminus_ns", self.tau_a_xminus_ns)
            _positive("tau_a_xplus_ns", self.tau_a_xplus_ns)
        else:
            _positive("tau_a_xx0_ns", self.tau_a_xx0_ns, allow_none=True)
        _in_range("eps", self.eps, 0.0, 1.0)
        _in_range("gamma", self.gamma, 0.0, 1e3)
        _in_range("gamma_h", self.gamma_h, 0.0, 1e3)
        _in_range("xi_rad", self.xi_rad, 0.0, 1.0)
        _positive("beta_xminus", self.beta_xminus)
        _positive("beta_xx", self.beta_xx)
        _in_range("power_p", self.power_p, 0.0, 20.0)
        _in_range("power_q", self.power_q, 0.0, 20.0)
        _positive("temperature_k", self.temperature_k, allow_none=True)
        if self.temperature_k is not None and self.variant != "levels":
            raise QrspecError(f"temperature_k={self.temperature_k!r} needs variant='levels' "
                              f"(got variant={self.variant!r})")
        if self.sign not in ("negative", "positive"):
            raise QrspecError(f"sign={self.sign!r} must be 'negative' or 'positive'")
        for name in ("levels_e", "levels_h"):
            lev = getattr(self, name)
            try:
                lev = tuple((int(g), float(e)) for g, e in lev)
            except (TypeError, ValueError):
                raise QrspecError(f"{name}={lev!r} must be a sequence of (degeneracy, "
                                  "energy_meV) pairs") from None
            if not lev or any(g < 1 for g, _ in lev):
                raise QrspecError(f"{name}={lev!r} must be non-empty with degeneracies >= 1")
            object.__setattr__(self, name, lev)
        object.__setattr__(self, "knr_all_states", bool(self.knr_all_states))

    # ---- completeness --------------------------------------------------------------------------
    @property
    def has_neutral_lifetimes(self) -> bool:
        """True when ``tau_x0_ns`` and the neutral Auger input are given (model evaluable)."""
        return self.tau_x0_ns is not None and (self.tau_a_xx0_ns is not None
                                               or self.tau_a_xminus_ns is not None)

    def require_neutral_lifetimes(self) -> None:
        """Raise :class:`QrspecError` unless the model can be evaluated (see above)."""
        if self.tau_x0_ns is None:
            raise QrspecError("tau_x0_ns=None: the neutral exciton lifetime is needed to "
                              "evaluate the charge model")
        if self.tau_a_xx0_ns is None and self.tau_a_xminus_ns is None:
            raise QrspecError("tau_a_xx0_ns=None: give the neutral biexciton Auger lifetime "
                              "or both tau_a_xminus_ns and tau_a_xplus_ns")

    # ---- derived rates (ns^-1) ---------------------------------------------------------------
    @property
    def k_r_per_ns(self) -> float:
        """Neutral exciton radiative rate ``qy_x0 / tau_x0_ns``."""
        self.require_neutral_lifetimes()
        return self.qy_x0 / self.tau_x0_ns

    @property
    def k_nr0_per_ns(self) -> float:
        """Charge-independent non-Auger loss ``(1 - qy_x0) / tau_x0_ns``."""
        self.require_neutral_lifetimes()
        return (1.0 - self.qy_x0) / self.tau_x0_ns

    @property
    def a_n_per_ns(self) -> float:
        """Negative-trion Auger rate A_n (electron acceptor), before sign mirroring."""
        self.require_neutral_lifetimes()
        if self.tau_a_xminus_ns is not None:
            return 1.0 / self.tau_a_xminus_ns
        return self.eps / (2.0 * self.tau_a_xx0_ns)

    @property
    def a_p_per_ns(self) -> float:
        """Positive-trion Auger rate A_p (hole acceptor), before sign mirroring."""
        self.require_neutral_lifetimes()
        if self.tau_a_xplus_ns is not None:
            return 1.0 / self.tau_a_xplus_ns
        return (1.0 - self.eps) / (2.0 * self.tau_a_xx0_ns)

    @property
    def k_a_xx0_per_ns(self) -> float:
        """Neutral biexciton Auger rate ``2 A_n + 2 A_p``."""
        return 2.0 * (self.a_n_per_ns + self.a_p_per_ns)

    @property
    def eps_effective(self) -> float:
        """A_n / (A_n + A_p) actually used (equals ``eps`` unless trion lifetimes are given)."""
        if self.tau_a_xminus_ns is None:
            return float(self.eps)
        return self.a_n_per_ns / (self.a_n_per_ns + self.a_p_per_ns)

    def charge_model(self) -> ChargeModelConfig:
        """The same parameters as a plain :class:`ChargeModelConfig` (drops subclass fields)."""
        names = {f.name for f in fields(ChargeModelConfig)}
        return ChargeModelConfig(**{k: getattr(self, k) for k in names})

    # ---- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain dict of the fields (levels as lists), JSON-serialisable."""
        d = asdict(self)
        d["levels_e"] = [list(x) for x in self.levels_e]
        d["levels_h"] = [list(x) for x in self.levels_h]
        return d

    def to_json(self) -> str:
        """JSON text; ``ChargeModelConfig.from_json(c.to_json()) == c``."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> ChargeModelConfig:
        """Build from a dict; unknown keys raise."""
        if not isinstance(data, dict):
            raise QrspecError(f"{cls.__name__}={data!r} must be a dict")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise QrspecError(f"unknown {cls.__name__} keys {unknown}; known: {sorted(names)}")
        data = dict(data)
        for key in ("levels_e", "levels_h"):
            if key in data and data[key] is not None:
                data[key] = tuple(tuple(x) for x in data[key])
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> ChargeModelConfig:
        """Inverse of :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise QrspecError(f"config JSON is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise QrspecError(f"config JSON must be an object, got {type(data).__name__}")
        return cls.from_dict(data)

    def replace(self, **changes) -> ChargeModelConfig:
        """A copy with some fields changed (validated again); unknown names raise."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise QrspecError(f"unknown {type(self).__name__} keys {unknown}")
        return replace(self, **changes)
