"""``ParticleAnalysis``: everything computed for one particle, one typed field per stage."""

from __future__ import annotations

from dataclasses import dataclass

from qrspec.analysis.acquisition import Acquisition
from qrspec.analysis.alignment import Alignment
from qrspec.analysis.blinking import Blinking
from qrspec.analysis.bursts import Bursts
from qrspec.analysis.charging import Charging
from qrspec.analysis.detector import DetectorArtefacts
from qrspec.analysis.flid import Flid
from qrspec.analysis.g2 import G2Result
from qrspec.analysis.levels import Levels
from qrspec.analysis.states import States
from qrspec.analysis.tau_xx import TauXXMethods
from qrspec.analysis.trajectory import Trajectory

__all__ = ["ParticleAnalysis", "STAGES"]

# the stage fields of ParticleAnalysis, in pipeline order (their flags are joined in this order)
STAGES = ("acquisition", "bursts", "trajectory", "alignment", "levels", "blinking", "detector",
          "g2", "states", "flid", "tau_xx", "charging")


@dataclass(frozen=True, eq=False)
class ParticleAnalysis:
    """The analysis of one particle: identity, provenance, status and one result per stage.

    A particle that could not be analysed has ``status == "failed"``, the reason in
    ``failure`` (and ``traceback``) and every stage ``None``.

    Attributes
    ----------
    particle_id : str
        Identifier (sanitised file stem; safe as a file and HDF5 group name).
    group : str
        Sample group.
    source : str
        Path of the TTTR file ("" for photons given in memory).
    source_sha256 : str
        SHA-256 of the source file (provenance; "" when unknown).
    status : str
        ``"ok"`` or ``"failed"``.
    failure : str
        Why the particle failed ("" when ok).
    traceback : str
        Python traceback of a failure ("" when none).
    config_json : str
        The AnalysisConfig used, as JSON ("" when unknown).
    analysis_s : float
        Wall time of the analysis (NaN for a failure).
    acquisition, trajectory, alignment, levels, g2, states, flid, tau_xx, charging
        Stage results (:mod:`qrspec.analysis.acquisition` ... :mod:`qrspec.analysis.charging`).
        A stage that does not apply (T2 data without sync: no decays; one detector: no g2) is
        None, and the acquisition's flags say so.
    bursts, blinking, detector
        Photon bursts (:mod:`qrspec.analysis.bursts`), bleaching and dwell-time laws
        (:mod:`qrspec.analysis.blinking`), afterpulsing and dead time
        (:mod:`qrspec.analysis.detector`). Times of every stage after ``bursts`` are on the
        analysis clock (burst windows removed; :meth:`Bursts.to_file_s` maps them back); g2,
        detector, states, flid, tau_xx and charging analyse ``blinking.window_s`` only.
    """

    particle_id: str
    group: str
    source: str
    source_sha256: str
    status: str
    failure: str = ""
    traceback: str = ""
    config_json: str = ""
    analysis_s: float = float("nan")
    acquisition: Acquisition | None = None
    bursts: Bursts | None = None
    trajectory: Trajectory | None = None
    alignment: Alignment | None = None
    levels: Levels | None = None
    blinking: Blinking | None = None
    detector: DetectorArtefacts | None = None
    g2: G2Result | None = None
    states: States | None = None
    flid: Flid | None = None
    tau_xx: TauXXMethods | None = None
    charging: Charging | None = None

    @property
    def ok(self) -> bool:
        """True when the analysis ran."""
        return self.status == "ok"

    @property
    def flags(self) -> tuple[str, ...]:
        """Every stage's flags (what the data could not decide), in pipeline order, each once.

        A coarsened trajectory is flagged by the trajectory and by the FLID built on it; the flag
        is counted once.
        """
        out: list[str] = []
        for name in STAGES:
            stage = getattr(self, name)
            out += getattr(stage, "flags", ())
        return tuple(dict.fromkeys(out))

    @property
    def error(self) -> str:
        """The failure (failed) or the joined flags (ok); "" when none."""
        return self.failure if self.status != "ok" else "; ".join(self.flags)

    @classmethod
    def failed(cls, particle_id: str, group: str, source: str, failure: str, *,
               source_sha256: str = "", traceback: str = "",
               config_json: str = "") -> ParticleAnalysis:
        """A failed particle (no stage results)."""
        return cls(particle_id=particle_id, group=group, source=source,
                   source_sha256=source_sha256, status="failed", failure=failure,
                   traceback=traceback, config_json=config_json)

