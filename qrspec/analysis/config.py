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

# fewest heralded pairs of a charging window: qrspec.fitting.biexciton.MIN_HERALDED_PAIRS (a
# literal here: importing the fitting layer would load numba when a config is built; a test
# checks that the two agree)
MIN_WINDOW_PAIRS = 20


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

    def __post_init__(self):
        if self.detectors is not None:
            dets = detector_list("detectors", self.detectors)
            if len(dets) > 2:
                raise QrspecError(f"detectors={self.detectors!r} must be one or two 0-based "
                                  "detectors (None: the two with most photons)")
            object.__setattr__(self, "detectors", tuple(dets))
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
        self._check_levels_and_charging()
        if self.charge_model.variant not in ("capped", "uncapped", "power_law"):
            raise QrspecError(f"charge_model.variant={self.charge_model.variant!r} must be "
                              "'capped', 'uncapped' or 'power_law'")

    def _check_levels_and_charging(self):
        """Checks of the change-point, label, verdict and charging-window fields (issue 15/17)."""
        from qrspec.levels.labels import LABELS

        def integer(name, lo, hi=None):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None
                                                                           and v > hi):
                rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
                raise QrspecError(f"{name}={v!r} must be an integer {rng}")

        integer("cpa_window_photons", 2, 8192)
        if self.cpa_overlap_photons is not None:
            w = self.cpa_window_photons
            integer("cpa_overlap_photons", 0, w - -(-w // 4))
        integer("cpa_max_sweeps", 1)
        if not isinstance(self.cpa_refine, bool):
            raise QrspecError(f"cpa_refine={self.cpa_refine!r} must be true or false")
        if self.charging_window_rule not in ("pairs", "time"):
            raise QrspecError(f"charging_window_rule={self.charging_window_rule!r} must be "
                              "'pairs' or 'time'")
        integer("charging_window_pairs", MIN_WINDOW_PAIRS)
        integer("charging_max_windows", 1)
        v = self.verdict_alpha
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < 0.5:
            raise QrspecError(f"verdict_alpha={v!r} must be in (0, 0.5)")
        v = self.single_emitter_max_g2
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 1:
            raise QrspecError(f"single_emitter_max_g2={v!r} must be in (0, 1]")
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
        """``label_overrides`` in the form :func:`qrspec.levels.label_levels` takes (None
        when there are none)."""
        if not self.label_overrides:
            return None
        return {(row[0] if len(row) == 2 else (row[0], row[1])): row[-1]
                for row in self.label_overrides}

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        """Plain dict (JSON-serialisable)."""
        d = asdict(self)
        d["detectors"] = None if self.detectors is None else list(self.detectors)
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
