"""What a container parser (PTU or legacy) tells the record decoder about a file.

Also the plausible ranges of its time units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from qrspec.errors import TTTRFormatError
from qrspec.io.records import RecordType

# Plausible time units (s). Every PicoQuant device lies well inside: TCSPC bins and T2 tags of
# 1 ps (HydraHarp, PicoHarp 330) to 250 ps (TimeHarp 260 N), sync periods of 5 ns (200 MHz) to
# 100 ns+ (pulse pickers, 10 ms in slow phosphorescence work); a header outside them is corrupt
# or hostile (1e-288 s, 1e300 s, 5e-324 s), and would make every time downstream overflow or
# vanish.
BIN_WIDTH_S = (1e-14, 1e-6)  # T3 TCSPC bin, T2 time tag
SYNC_PERIOD_S = (1e-11, 10.0)  # T3 timestamp unit (the sync period; the 100 ns .t3r clock)
SYNC_RATE_HZ = (0.1, 1e11)


def check_unit(path, name: str, value: float, bounds: tuple[float, float], what: str) -> float:
    """``value`` (s) if it lies in ``bounds``, else a :class:`TTTRFormatError`.

    The error names the header field as ``name=value``.
    """
    lo, hi = bounds
    if not (isinstance(value, int | float) and math.isfinite(value) and lo <= value <= hi):
        raise TTTRFormatError(path, f"{name}={value!r} s is not a plausible {what} (expected "
                              f"{lo:g}..{hi:g} s)")
    return float(value)


@dataclass(frozen=True)
class FileLayout:
    """Where the records of a TTTR file are and how to interpret them.

    Attributes
    ----------
    path : str
        The file.
    container : str
        ``"PTU"``, ``"HT3"``, ``"HT2"``, ``"PT3"``, ``"PT2"`` or ``"T3R"``.
    header : dict
        All header fields/tags in file order (PTU indexed tags as ``name[idx]``).
    record_type : RecordType
        Decoder to use.
    data_offset : int
        Byte offset of the first record.
    n_records : int
        Number of whole 32-bit records to decode (already reconciled with the file size).
    n_records_header : int or None
        Record count the header claims (may lie).
    timestamps_unit : float
        Seconds per timestamp tick (sync period in T3, tag resolution in T2).
    nanotimes_unit : float or None
        Seconds per nanotime bin (T3).
    sync_rate_hz : float
        Sync rate (0 if unknown).
    acquisition_s : float or None
        Acquisition time the header states.
    warnings : tuple of str
        Recoverable problems found while parsing the header.
    detector_limit : int or None
        Photons on detectors ``>= detector_limit`` are not on an input the header lists (PTU:
        ``HW_InpChannels + 1``, as HydraHarp-family headers count the sync input there and
        PicoHarp T2 records the sync input as detector 0; HT3/HT2: ``InputChannelsPresent``);
        None when the header does not say (the record layout bounds the detector then).
    """

    path: str
    container: str
    header: dict
    record_type: RecordType
    data_offset: int
    n_records: int
    n_records_header: int | None
    timestamps_unit: float
    nanotimes_unit: float | None
    sync_rate_hz: float
    acquisition_s: float | None
    warnings: tuple = ()
    detector_limit: int | None = None

    @property
    def mode(self) -> int:
        """2 (T2) or 3 (T3)."""
        return self.record_type.mode
