"""``AnalysisConfig``: every parameter of the per-particle pipeline, frozen, JSON round-trip.

Every CLI option of ``qrspec analyze`` / ``qrspec batch`` maps to exactly one field. Values
that depend on the file (laser period, TCSPC resolution, per-detector offsets) are derived
from the file when the field is ``None``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields

from qrspec.charging.config import ChargeModelConfig
from qrspec.errors import QrspecError
from qrspec.validate import detector_list

__all__ = ["AnalysisConfig", "ChargeModelParams", "MAX_CONFIG_BYTES", "MAX_JSON_DEPTH"]

#: a config file larger than this is refused (a real one is about 1 kB)
MAX_CONFIG_BYTES = 1 << 20
#: JSON nesting deeper than this is refused (a config is 2 levels deep)
MAX_JSON_DEPTH = 16

# fewest heralded pairs of a charging window: qrspec.fitting.biexciton.MIN_HERALDED_PAIRS (a
# literal here: importing the fitting layer would load numba when a config is built; a test
# checks that the two agree)
MIN_WINDOW_PAIRS = 20


@dataclass(frozen=True)
class ChargeModelParams(ChargeModelConfig):
    """The charge model of the analysis.

    :class:`qrspec.charging.ChargeModelConfig` (every field, with its methods.md §1.8 defaults)
    with analysis defaults for the neutral lifetimes.

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
    cpa_window_photons : int
        Largest photon range of one change-point test (2 .. 8192; ``docs/levels.md``).
    cpa_overlap_photons : int or None
        Overlap of consecutive scan windows; None: half a window (no change lost at a seam).
    cpa_refine : bool
        Re-test every change between its neighbours and search beside it (False: raw scan).
    cpa_max_sweeps : int
        Most refinement / beside-search sweeps.
    max_levels : int
        Upper bound on the number of intensity levels (BIC chooses).
    min_decay_photons : int
        Fewer photons in a state's decay: its fit is flagged, not used.
    fit_method : str
        Decay fits (tau_X per state and level, cascade tau_XX): ``"mle"`` (Poisson maximum
        likelihood) or ``"lsq"`` (Neyman-weighted least squares, biased at a few counts per
        bin). The heralded tau_XX (a few pairs per bin) is always a Poisson MLE.
    charging_window_rule : str
        How charged segments are pooled into the windows of n_c(t), tau_A(t)
        (:func:`qrspec.analysis.charging.charging_windows`): ``"pairs"`` (default) cuts the
        charged time, in time order, into windows holding ``charging_window_pairs`` heralded
        photon pairs each (the photon budget of the biexciton lifetime, which limits a window);
        ``"time"`` pools consecutive charged segments until they hold ``charging_window_s`` of
        charged time.
    charging_window_pairs : int
        Heralded same-period pairs in the fit range (first photon >= 0.3 ns after the rise)
        per charging window (rule ``"pairs"``; >= 20, the fewest the heralded fit takes).
    charging_max_windows : int
        Rule ``"pairs"``: at most about this many windows per particle (a bright rod's windows
        then hold more pairs than ``charging_window_pairs``: the joint fit's cost grows with
        the number of windows, and a trend needs ~10 points, not 60).
    charging_window_s : float
        Charged time per window (rule ``"time"``), and, with rule ``"pairs"``, the longest a
        window may span in charged time (a dim rod then gets windows with too few pairs,
        flagged, rather than one window for minutes).
    mean_excitations : float or None
        Mean excitons per pulse <N> (from fluence x cross-section). When given, the neutral
        tau_XX is also estimated by the g2 gate scan and the cascade decay fit and compared with
        the heralded value; None: heralded only.
    single_emitter_max_g2 : float
        Threshold of the single-emitter verdict (:func:`qrspec.levels.emitter_verdict`): the
        one-sided upper bound of the gated g2(0) must be below it (0.35 excludes two emitters
        whose gated brightness ratio is below 3.6; 0.5 only equal pairs).
    verdict_alpha : float
        One-sided error probability of the single-emitter verdict's bounds.
    neutral_tau_x_ns : float, (float, float) or None
        A neutral exciton lifetime known from elsewhere (and its error): a level significantly
        shorter than 0.75 of it is not neutral (:func:`qrspec.levels.label_levels`).
    label_overrides : tuple of rows or None
        User labels: ``(level, label)`` or ``(start_s, stop_s, label)`` rows (``label`` one of
        neutral, charged, trap, off, unclassified); flagged ``user_override``.
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
    cpa_window_photons: int = 4096
    cpa_overlap_photons: int | None = None
    cpa_refine: bool = True
    cpa_max_sweeps: int = 10
    max_levels: int = 8
    min_decay_photons: int = 200
    fit_method: str = "mle"
    charging_window_rule: str = "pairs"
    charging_window_pairs: int = 30
    charging_max_windows: int = 12
    charging_window_s: float = 5.0
    mean_excitations: float | None = None
    single_emitter_max_g2: float = 0.35
    verdict_alpha: float = 0.01
    neutral_tau_x_ns: float | tuple | None = None
    label_overrides: tuple | None = None
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
        cm = self.charge_model
        if isinstance(cm, dict):
            cm = _charge_model_from_dict(cm)
        elif not isinstance(cm, ChargeModelParams):
            raise QrspecError(f"charge_model={cm!r} must be a ChargeModelParams (or a dict of "
                              "its fields): a plain ChargeModelConfig would turn its default "
                              "neutral lifetimes into user values")
        cm = _check_charge_model(cm)
        object.__setattr__(self, "charge_model", cm)
        if self.detectors is not None:  # integers only (not 0.7, not true), distinct, 0..255
            dets = detector_list("detectors", self.detectors)
            if len(dets) > 2:
                raise QrspecError(f"detectors={self.detectors!r} must be one or two 0-based "
                                  "detectors (None: the two with most photons)")
            object.__setattr__(self, "detectors", tuple(dets))
        if self.irf_path is not None:
            if not isinstance(self.irf_path, str | os.PathLike) or not os.fspath(self.irf_path):
                raise QrspecError(f"irf_path={self.irf_path!r} must be a file path")
            object.__setattr__(self, "irf_path", os.fspath(self.irf_path))
        if not isinstance(self.allow_scan, bool):
            raise QrspecError(f"allow_scan={self.allow_scan!r} must be true or false")
        for name, rule in _CHECKS.items():
            object.__setattr__(self, name, _check_field(name, getattr(self, name), *rule))
        if self.fit_method not in ("mle", "lsq"):
            raise QrspecError(f"fit_method={self.fit_method!r} must be 'mle' or 'lsq'")
        self._check_levels_and_charging()
        self._check_hygiene()

    def _check_levels_and_charging(self):
        """Checks of the change-point, label, verdict and charging-window fields (issue 15/17)."""
        from qrspec.levels.labels import LABELS

        if self.cpa_overlap_photons is not None:  # numbers: _CHECKS; this bound is relative
            w = self.cpa_window_photons
            if self.cpa_overlap_photons > w - -(-w // 4):
                raise QrspecError(f"cpa_overlap_photons={self.cpa_overlap_photons!r} must be "
                                  f"in 0..{w - -(-w // 4)} (cpa_window_photons={w} minus a "
                                  "quarter window)")
        if not isinstance(self.cpa_refine, bool):
            raise QrspecError(f"cpa_refine={self.cpa_refine!r} must be true or false")
        if self.charging_window_rule not in ("pairs", "time"):
            raise QrspecError(f"charging_window_rule={self.charging_window_rule!r} must be "
                              "'pairs' or 'time'")
        ref = self.neutral_tau_x_ns
        if ref is not None:
            vals = list(ref) if isinstance(ref, list | tuple) else [ref]
            ok = len(vals) in (1, 2) and all(
                not isinstance(x, bool) and isinstance(x, int | float) and math.isfinite(x)
                for x in vals) and vals[0] > 0 and (len(vals) == 1 or vals[1] >= 0)
            if not ok:
                raise QrspecError(f"neutral_tau_x_ns={ref!r} must be a lifetime > 0 in ns or "
                                  "a (tau_ns, err_ns) pair")
            object.__setattr__(self, "neutral_tau_x_ns",
                               float(vals[0]) if len(vals) == 1 else tuple(map(float, vals)))
        rows = self.label_overrides
        if rows is not None:
            if isinstance(rows, dict):  # {level: label} (JSON keys are strings)
                rows = [(k, v) for k, v in rows.items()]
            if not isinstance(rows, list | tuple):
                raise QrspecError(f"label_overrides={rows!r} must be a list of (level, label) "
                                  "or (start_s, stop_s, label) rows")
            out = []
            for row in rows:
                bad = QrspecError(f"label_overrides row={row!r} must be (level, label) or "
                                  f"(start_s, stop_s, label) with a label out of "
                                  f"{list(LABELS)}")
                if not isinstance(row, list | tuple) or len(row) not in (2, 3) \
                        or row[-1] not in LABELS:
                    raise bad
                try:
                    if len(row) == 2:
                        k = int(row[0])
                        if k < 0 or str(k) != str(row[0]).strip():
                            raise ValueError
                        out.append((k, str(row[1])))
                    else:
                        a, b = float(row[0]), float(row[1])
                        if not (math.isfinite(a) and math.isfinite(b) and a < b):
                            raise ValueError
                        out.append((a, b, str(row[2])))
                except (TypeError, ValueError):
                    raise bad from None
            object.__setattr__(self, "label_overrides", tuple(out))

    def label_override_map(self) -> dict | None:
        """``label_overrides`` in the form :func:`qrspec.levels.label_levels` takes.

        None when there are none.
        """
        if not self.label_overrides:
            return None
        return {(row[0] if len(row) == 2 else (row[0], row[1])): row[-1]
                for row in self.label_overrides}

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
        """Build from a dict.

        Unknown keys and values of the wrong type are errors naming the field (typos and nonsense
        must not pass silently).
        """
        if not isinstance(d, dict):
            raise QrspecError(f"config must be an object (a JSON dict), not {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known, key=str)
        if "gate_ns" in unknown:  # renamed (issue 13): an old config must not pass silently
            raise QrspecError("config key gate_ns was renamed gate_after_rise_ns (the gate "
                              "start after the rise t0 of the aligned decay)")
        if unknown:
            raise QrspecError(f"unknown config keys {unknown}; known keys are {sorted(known)}")
        d = dict(d)
        if "charge_model" in d and isinstance(d["charge_model"], dict):
            d["charge_model"] = _charge_model_from_dict(d["charge_model"])
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> AnalysisConfig:
        """Parse JSON text (see :meth:`to_json`).

        Nesting deeper than :data:`MAX_JSON_DEPTH` is refused.
        """
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise QrspecError(f"config is not valid JSON: {exc}") from None
        except RecursionError:
            raise QrspecError(f"config JSON is nested deeper than {MAX_JSON_DEPTH} levels") \
                from None
        if _depth(d) > MAX_JSON_DEPTH:
            raise QrspecError(f"config JSON is nested deeper than {MAX_JSON_DEPTH} levels")
        if not isinstance(d, dict):
            raise QrspecError("config JSON must be an object")
        return cls.from_dict(d)

    @classmethod
    def from_file(cls, path) -> AnalysisConfig:
        """Read a JSON config file: a regular file of at most :data:`MAX_CONFIG_BYTES`, UTF-8.

        A FIFO, device or folder is refused without reading (a FIFO would block for ever).
        """
        from qrspec.io.files import open_regular

        name = os.fsdecode(os.fspath(path))
        try:  # a FIFO, device or folder is refused before reading (a FIFO would block)
            with open_regular(path, error=_config_error, kind="config file") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size > MAX_CONFIG_BYTES:
                    raise QrspecError(f"{name}: config file size={size} bytes exceeds "
                                      f"{MAX_CONFIG_BYTES}")
                raw = fh.read(MAX_CONFIG_BYTES + 1)
        except OSError as exc:
            raise QrspecError(f"{name}: cannot read config ({exc.strerror})") from None
        if len(raw) > MAX_CONFIG_BYTES:
            raise QrspecError(f"{name}: config file exceeds {MAX_CONFIG_BYTES} bytes")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise QrspecError(f"{name}: config is not UTF-8 text ({exc.reason} at byte "
                              f"{exc.start})") from None
        try:
            return cls.from_json(text)
        except QrspecError as exc:
            raise QrspecError(f"{name}: {exc}") from None

    def replace(self, **changes) -> AnalysisConfig:
        """A copy with some fields changed."""
        d = self.to_dict()
        d.update(changes)
        return AnalysisConfig.from_dict(d)


# ---------------------------------------------------------------------- validation
# Typed checks of every field (issue 16): a bool is not a number, a fraction is not a detector
# index, a string is not a number. Each rule: field -> (kind, lo, hi, lo_open, hi_open,
# optional); kind "real" accepts int/float (not bool) and must be finite, "int" accepts
# integers only. The ranges refuse nonsense; grid-size caps (bin width vs span, g2 range) are
# checked where the data is known.
_INF = math.inf
_CHECKS: dict[str, tuple] = {
    "bin_width_s": ("real", 0.0, 86400.0, True, False, False),
    "g2_max_lag_periods": ("int", 2, None, False, False, False),
    "g2_bin_ns": ("real", 0.0, 1e9, True, False, False),
    "g2_peak_window_ns": ("real", 0.0, 1e9, True, False, True),
    "gate_after_rise_ns": ("real", 0.0, 1e9, False, False, False),
    "hbt_delay_ns": ("real", -1e9, 1e9, False, False, True),
    "irf_bin_ns": ("real", 0.0, 1e6, True, False, True),
    "cpa_alpha": ("real", 0.0, 0.5, True, True, False),
    "cpa_confidence": ("real", 0.0, 1.0, True, True, False),
    "max_levels": ("int", 1, 20, False, False, False),
    "min_decay_photons": ("int", 1, None, False, False, False),
    "charging_window_s": ("real", 0.0, 1e9, True, False, False),
    "mean_excitations": ("real", 0.0, 50.0, True, True, True),
    "single_emitter_max_g2": ("real", 0.0, 1.0, True, False, False),
    "cpa_window_photons": ("int", 2, 8192, False, False, False),
    "cpa_overlap_photons": ("int", 0, 8192, False, False, True),
    "cpa_max_sweeps": ("int", 1, None, False, False, False),
    "charging_window_pairs": ("int", MIN_WINDOW_PAIRS, None, False, False, False),
    "charging_max_windows": ("int", 1, None, False, False, False),
    "verdict_alpha": ("real", 0.0, 0.5, True, True, False),
    # issue 18: bursts, bleaching, dwell laws, afterpulsing
    "burst_bin_width_s": ("real", 0.0, 86400.0, True, False, False),
    "burst_alpha": ("real", 0.0, 1.0, True, True, False),
    "bleach_p_threshold": ("real", 0.0, 1.0, True, True, False),
    "bleach_prior_alpha": ("real", 1.0, 100.0, True, False, False),  # > 1: normalisable law
    "dwell_min_events": ("int", 3, None, False, False, False),
    "afterpulse_max_lag_s": ("real", 0.0, 1.0, True, False, False),
}
_VARIANTS = ("capped", "uncapped", "power_law")
_CHARGE_MODEL_FIELDS = {f.name for f in fields(ChargeModelParams)}


def _check_field(name, v, kind, lo, hi, lo_open, hi_open, optional):
    """``v`` as a plain int or float, or a QrspecError naming ``name``.

    See :func:`qrspec.validate.strict_number`.
    """
    from qrspec.validate import strict_number

    return strict_number(name, v, kind=kind, lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open,
                         optional=optional)


def _charge_model_from_dict(cm: dict) -> ChargeModelParams:
    bad = sorted(set(cm) - _CHARGE_MODEL_FIELDS, key=str)
    if bad:
        raise QrspecError(f"unknown charge_model keys {bad}; known keys are "
                          f"{sorted(_CHARGE_MODEL_FIELDS)}")
    for f in fields(ChargeModelParams):  # checked before the model coerces them (bool(1))
        if f.name in cm and f.type in ("bool", bool) and not isinstance(cm[f.name], bool):
            raise QrspecError(f"charge_model.{f.name}={cm[f.name]!r} must be true or false")
    try:
        return ChargeModelParams.from_dict(cm)
    except (TypeError, ValueError) as exc:  # e.g. levels_e that is not a list of pairs
        if isinstance(exc, QrspecError):
            raise
        raise QrspecError(f"charge_model={cm!r} is malformed ({exc})") from None


def _check_charge_model(cm: ChargeModelParams) -> ChargeModelParams:
    """Types of every charge-model field (a bool is not a number, a number is not a flag).

    The ranges are the charge model's own checks (qrspec.charging.config).
    """
    if not isinstance(cm.variant, str) or cm.variant not in _VARIANTS:
        raise QrspecError(f"charge_model.variant={cm.variant!r} must be one of "
                          + ", ".join(repr(v) for v in _VARIANTS))
    changes = {}
    for f in fields(cm):
        t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        v = getattr(cm, f.name)
        if t in ("float", "float | None"):
            changes[f.name] = _check_field(f"charge_model.{f.name}", v, "real", None, None,
                                           False, False, t.endswith("None"))
        elif t == "bool" and not isinstance(v, bool):
            raise QrspecError(f"charge_model.{f.name}={v!r} must be true or false")
        elif t == "str" and not isinstance(v, str):
            raise QrspecError(f"charge_model.{f.name}={v!r} must be a string")
    return dataclasses.replace(cm, **changes)


def _config_error(path, problem: str) -> QrspecError:
    return QrspecError(f"{os.fsdecode(os.fspath(path))}: cannot read config: {problem}")


def _depth(obj, limit: int = MAX_JSON_DEPTH + 1) -> int:
    """Nesting depth of parsed JSON, counted up to ``limit`` (iterative: no recursion)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, dict | list):
            deepest = max(deepest, d)
            if d >= limit:
                return d
            stack.extend((v, d + 1) for v in (o.values() if isinstance(o, dict) else o))
    return deepest
