"""``AnalysisConfig``: every parameter of the per-particle pipeline, frozen, JSON round-trip.

Every CLI option of ``qrspec analyze`` / ``qrspec batch`` maps to exactly one field. Values
that depend on the file (laser period, TCSPC resolution, per-detector offsets) are derived
from the file when the field is ``None``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields

from qrspec.charging.config import ChargeModelConfig
from qrspec.errors import QrspecError
from qrspec.validate import detector_list, finite_float, positive_float

__all__ = ["AnalysisConfig", "ChargeModelParams"]


@dataclass(frozen=True)
class ChargeModelParams(ChargeModelConfig):
    """The charge model of the analysis: :class:`qrspec.charging.ChargeModelConfig` (every
    field, with its methods.md §1.8 defaults) with analysis defaults for the neutral lifetimes.

    ``tau_x0_ns`` and ``tau_a_xx0_ns`` default to ``None``: measured in the particle's neutral
    periods (tau_X0 from the decay, tau_A,XX0 from tau_X0 and the heralded tau_XX0). A value
    given is a user's neutral reference (e.g. the paper's tau_A,XX0 = 13.9 ns) and replaces the
    measurement, with the errors below (0 = exact).

    Analysis-only fields
    --------------------
    tau_x0_err_ns, tau_a_xx0_err_ns : float
        1-sigma errors of user-given neutral lifetimes, ns.
    """

    tau_x0_ns: float | None = None
    tau_a_xx0_ns: float | None = None
    tau_x0_err_ns: float = 0.0
    tau_a_xx0_err_ns: float = 0.0

    def __post_init__(self):
        try:
            super().__post_init__()
        except QrspecError as exc:
            raise QrspecError(f"charge_model.{exc}") from None
        for name in ("tau_x0_err_ns", "tau_a_xx0_err_ns"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
                    or v < 0:
                raise QrspecError(f"charge_model.{name}={v!r} must be a finite number >= 0")


@dataclass(frozen=True)
class AnalysisConfig:
    """Parameters of the per-particle analysis (see ``qrspec analyze --help``).

    Attributes
    ----------
    detectors : tuple of int or None
        One or two 0-based detectors to analyse; ``None`` (default): the two with most
        photons, or the only one (:func:`qrspec.stats.hbt.choose_detectors`). Two detectors
        are the HBT pair (g2 lag = t(higher) - t(lower)); one detector gives the trajectory,
        levels and decays, and g2 is not applicable.
    hbt_delay_ns : float or None
        HBT delay t(higher detector) - t(lower) subtracted from every g2 lag, whole laser
        periods included (e.g. a cable longer than a period). ``None``: found from the data
        (the suppressed peak of an antibunched emitter; flagged when the data cannot decide).
    bin_width_s : float
        Intensity-trajectory bin width.
    g2_max_lag_periods : int
        g2 computed over +- this many laser periods.
    g2_bin_ns : float
        g2 histogram bin width.
    g2_peak_window_ns : float or None
        Full width of the window integrated around each g2 peak; ``None``: the whole period.
    gate_after_rise_ns : float
        Time gate of the gated g2: both photons at least this long after the rise t0 of the
        aligned decay.
    cpa_alpha : float
        False-positive rate of each change-point test.
    cpa_confidence : float
        Confidence level of the change-point regions.
    max_levels : int
        Upper bound on the number of intensity levels (BIC chooses).
    min_decay_photons : int
        Fewer photons in a state's decay: its fit is flagged, not used.
    fit_method : str
        Decay fits (tau_X per state and level, cascade tau_XX): ``"mle"`` (Poisson maximum
        likelihood) or ``"lsq"`` (Neyman-weighted least squares, biased at a few counts per
        bin). The heralded tau_XX (a few pairs per bin) is always a Poisson MLE.
    charging_window_s : float
        Each n_c(t), tau_A(t) point pools consecutive charged segments until they hold at least
        this much charged time (short segments alone hold too few photon pairs).
    mean_excitations : float or None
        Mean excitons per pulse <N> (from fluence x cross-section). When given, the neutral
        tau_XX is also estimated by the g2 gate scan and the cascade decay fit and compared with
        the heralded value; None: heralded only.
    single_emitter_max_g2 : float
        Gated g2(0) must be significantly below this for a single-emitter verdict.
    irf_path : str or None
        Measured IRF (a TTTR file of scattered laser light, or a histogram as text / ``.npy``;
        :func:`qrspec.io.irf.read_irf`): the state decays are fitted by reconvolution with it
        (with a fitted shift). ``None``: tail fits.
    irf_bin_ns : float or None
        Bin width of a one-column IRF histogram (required there, ignored otherwise).
    allow_scan : bool
        Analyse a scan image (FLIM image, line scan: the header says so) as one particle
        anyway (flagged). Default: refused, since qrspec analyses single-particle point
        measurements.
    charge_model : ChargeModelParams
        Charge-model parameters.

    Photon hygiene and blinking statistics (issue 18; ``docs/blinking_and_hygiene.md``)
    ------------------------------------------------------------------------------------
    remove_bursts : bool
        Remove photon bursts (bins far above every level) before the trajectory; False: find
        and flag them only.
    burst_bin_width_s : float
        Bin width of the burst search (short: a 300-photon burst is lost in a 10 ms bin).
    burst_alpha : float
        False-alarm probability of a burst per particle.
    trim_bleaching : bool
        Analyse only the time before a detected bleaching (g2, states, FLID, tau_XX, charging,
        dwell laws); False: detect and flag only.
    bleach_p_threshold : float
        A final off stay is bleaching when a blink that long is less probable than this.
    bleach_prior_alpha : float
        Off-time exponent assumed for the bleaching test when the particle has too few off
        stays for its own law.
    dwell_off_labels : tuple of str
        Level labels counted as "off" in the on/off dwell-time laws; every other label is
        "on". Default: every label but ``neutral`` (on = the bright neutral state, off = any
        dimmer state), because a quantum rod's charged (trion) and trap states emit and an
        undoped rod has no background-level ``off`` state at all; with ``("off",)`` only
        periods at the background count as off (the quantum-dot convention).
    dwell_min_events : int
        Fewest complete stays above t_min for a dwell-time exponent (else NaN, flagged).
    afterpulse_max_lag_s : float
        Afterpulses counted up to this delay after their parent (whole laser periods).
    correct_afterpulsing : bool
        Correct g2(0) (always, by the estimated afterpulse probabilities) and the decay fits
        (when the afterpulsing is significant: its measured nanotime profile as a fixed
        background) for afterpulsing; False: estimate and flag only.
    """

    detectors: tuple | None = None
    hbt_delay_ns: float | None = None
    bin_width_s: float = 0.01
    g2_max_lag_periods: int = 5
    g2_bin_ns: float = 0.5
    g2_peak_window_ns: float | None = None
    gate_after_rise_ns: float = 3.0
    cpa_alpha: float = 0.05
    cpa_confidence: float = 0.69
    max_levels: int = 8
    min_decay_photons: int = 200
    fit_method: str = "mle"
    charging_window_s: float = 5.0
    mean_excitations: float | None = None
    single_emitter_max_g2: float = 0.5
    irf_path: str | None = None
    irf_bin_ns: float | None = None
    allow_scan: bool = False
    charge_model: ChargeModelParams = field(default_factory=ChargeModelParams)
    remove_bursts: bool = True
    burst_bin_width_s: float = 1e-3
    burst_alpha: float = 0.01
    trim_bleaching: bool = True
    bleach_p_threshold: float = 0.01
    bleach_prior_alpha: float = 1.5
    dwell_off_labels: tuple = ("charged", "trap", "off", "unclassified")
    dwell_min_events: int = 15
    afterpulse_max_lag_s: float = 1e-5
    correct_afterpulsing: bool = True

    def __post_init__(self):
        if self.detectors is not None:
            dets = detector_list("detectors", self.detectors)
            if len(dets) > 2:
                raise QrspecError(f"detectors={self.detectors!r} must be one or two 0-based "
                                  "detectors (None: the two with most photons)")
            object.__setattr__(self, "detectors", tuple(dets))
        self._check_hygiene()
        if isinstance(self.charge_model, dict):
            object.__setattr__(self, "charge_model",
                               ChargeModelParams.from_dict(self.charge_model))
        if not isinstance(self.charge_model, ChargeModelParams):
            raise QrspecError(f"charge_model={self.charge_model!r} must be a ChargeModelParams "
                              "(or a dict): a plain ChargeModelConfig would turn its default "
                              "neutral lifetimes into user values")
        if self.hbt_delay_ns is not None:
            object.__setattr__(self, "hbt_delay_ns",
                               finite_float("hbt_delay_ns", self.hbt_delay_ns))
        if self.irf_path is not None:
            if not isinstance(self.irf_path, str | os.PathLike) or not os.fspath(self.irf_path):
                raise QrspecError(f"irf_path={self.irf_path!r} must be a file path")
            object.__setattr__(self, "irf_path", os.fspath(self.irf_path))
        if self.irf_bin_ns is not None:
            object.__setattr__(self, "irf_bin_ns", positive_float("irf_bin_ns", self.irf_bin_ns))
        if not isinstance(self.allow_scan, bool):
            raise QrspecError(f"allow_scan={self.allow_scan!r} must be true or false")
        for name in ("bin_width_s", "g2_bin_ns"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise QrspecError(f"{name}={v!r} must be a positive number")
        if not (isinstance(self.g2_max_lag_periods, int) and self.g2_max_lag_periods >= 2):
            raise QrspecError(f"g2_max_lag_periods={self.g2_max_lag_periods!r} must be an "
                              "integer >= 2 (side peaks normalise g2)")
        if not (0 < self.cpa_alpha < 0.5):
            raise QrspecError(f"cpa_alpha={self.cpa_alpha!r} must be in (0, 0.5)")
        if not (0 < self.cpa_confidence < 1):
            raise QrspecError(f"cpa_confidence={self.cpa_confidence!r} must be in (0, 1)")
        if self.mean_excitations is not None and not (
                isinstance(self.mean_excitations, int | float) and 0 < self.mean_excitations < 50):
            raise QrspecError(f"mean_excitations={self.mean_excitations!r} must be in (0, 50)")
        if self.fit_method not in ("mle", "lsq"):
            raise QrspecError(f"fit_method={self.fit_method!r} must be 'mle' or 'lsq'")
        if not (isinstance(self.gate_after_rise_ns, int | float)
                and math.isfinite(self.gate_after_rise_ns) and self.gate_after_rise_ns >= 0):
            raise QrspecError(f"gate_after_rise_ns={self.gate_after_rise_ns!r} must be a "
                              "finite number >= 0")
        if not (isinstance(self.charging_window_s, int | float) and self.charging_window_s > 0):
            raise QrspecError(f"charging_window_s={self.charging_window_s!r} must be > 0")
        if self.charge_model.variant not in ("capped", "uncapped", "power_law"):
            raise QrspecError(f"charge_model.variant={self.charge_model.variant!r} must be "
                              "'capped', 'uncapped' or 'power_law'")

    def _check_hygiene(self):
        """Checks of the burst, bleaching, dwell-law and afterpulsing fields (issue 18)."""
        from qrspec.levels.labels import LABELS

        labels = self.dwell_off_labels
        if isinstance(labels, str):  # "off,trap" (CLI)
            labels = tuple(x.strip() for x in labels.split(",") if x.strip())
        if not isinstance(labels, list | tuple) or not all(isinstance(x, str) for x in labels):
            raise QrspecError(f"dwell_off_labels={self.dwell_off_labels!r} must be a list of "
                              f"labels out of {list(LABELS)}")
        labels = tuple(dict.fromkeys(labels))
        bad = [x for x in labels if x not in LABELS]
        if bad or not labels:
            raise QrspecError(f"dwell_off_labels={self.dwell_off_labels!r} must be a non-empty "
                              f"list of labels out of {list(LABELS)}")
        if set(labels) == set(LABELS):
            raise QrspecError(f"dwell_off_labels={self.dwell_off_labels!r} leaves no label "
                              "for the on state")
        object.__setattr__(self, "dwell_off_labels", labels)
        for name in ("remove_bursts", "trim_bleaching", "correct_afterpulsing"):
            if not isinstance(getattr(self, name), bool):
                raise QrspecError(f"{name}={getattr(self, name)!r} must be true or false")

        def number(name):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise QrspecError(f"{name}={v!r} must be a finite number")
            return v

        if not number("burst_bin_width_s") > 0:
            raise QrspecError(f"burst_bin_width_s={self.burst_bin_width_s!r} must be > 0")
        for name in ("burst_alpha", "bleach_p_threshold"):
            if not 0 < number(name) < 1:
                raise QrspecError(f"{name}={getattr(self, name)!r} must be in (0, 1)")
        if not number("bleach_prior_alpha") > 1:
            raise QrspecError(f"bleach_prior_alpha={self.bleach_prior_alpha!r} must be > 1 "
                              "(a power law normalisable above its lower cut)")
        if not number("afterpulse_max_lag_s") > 0:
            raise QrspecError(f"afterpulse_max_lag_s={self.afterpulse_max_lag_s!r} must be > 0")
        v = self.dwell_min_events
        if isinstance(v, bool) or not isinstance(v, int) or v < 3:
            raise QrspecError(f"dwell_min_events={v!r} must be an integer >= 3")

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        """Plain dict (JSON-serialisable)."""
        d = asdict(self)
        d["detectors"] = None if self.detectors is None else list(self.detectors)
        d["dwell_off_labels"] = list(self.dwell_off_labels)
        d["charge_model"] = self.charge_model.to_dict()
        return d

    def to_json(self) -> str:
        """JSON text; ``AnalysisConfig.from_json(c.to_json()) == c``."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> AnalysisConfig:
        """Build from a dict; unknown keys are an error (typos must not pass silently)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if "gate_ns" in unknown:  # renamed (issue 13): an old config must not pass silently
            raise QrspecError("config key gate_ns was renamed gate_after_rise_ns (the gate "
                              "start after the rise t0 of the aligned decay)")
        if unknown:
            raise QrspecError(f"unknown config keys {unknown}; known keys are {sorted(known)}")
        d = dict(d)
        if "charge_model" in d:
            cm = dict(d["charge_model"])
            known_cm = {f.name for f in fields(ChargeModelParams)}
            bad = sorted(set(cm) - known_cm)
            if bad:
                raise QrspecError(f"unknown charge_model keys {bad}; known keys are "
                                  f"{sorted(known_cm)}")
            d["charge_model"] = ChargeModelParams.from_dict(cm)
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> AnalysisConfig:
        """Parse JSON text (see :meth:`to_json`)."""
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise QrspecError(f"config is not valid JSON: {exc}") from None
        if not isinstance(d, dict):
            raise QrspecError("config JSON must be an object")
        return cls.from_dict(d)

    @classmethod
    def from_file(cls, path) -> AnalysisConfig:
        """Read a JSON config file."""
        try:
            with open(path) as fh:
                text = fh.read()
        except OSError as exc:
            raise QrspecError(f"{path}: cannot read config ({exc.strerror})") from None
        try:
            return cls.from_json(text)
        except QrspecError as exc:
            raise QrspecError(f"{path}: {exc}") from None

    def replace(self, **changes) -> AnalysisConfig:
        """A copy with some fields changed."""
        d = self.to_dict()
        d.update(changes)
        return AnalysisConfig.from_dict(d)
