"""Progress bars for long commands, and the end-of-batch per-group table.

:class:`ProgressBar` draws one line on a terminal (stderr by default) and nothing at all when
the stream is not a TTY (a log file, a pipe, CI) or when the user asked for quiet output. One
call per finished item, ``bar(item_id, status)``: the callback signature of
:func:`qrspec.app.batch.run_batch` (``progress=``) and of
:func:`qrspec.app.html_report.write_html_report`, so the same object serves ``batch``,
``report`` and ``simulate-batch``::

    with ProgressBar(len(items), "particles", enabled=progress_enabled(quiet, no_progress)) as bar:
        run_batch(..., progress=bar)

:func:`format_group_table` is the table ``batch`` prints at the end: per group the number of
particles, how many succeeded and failed, and the medians of gated g2(0), neutral tau_X and
n_c with the number of particles behind each median (the store's group statistics).
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np

__all__ = ["ProgressBar", "progress_enabled", "format_group_table"]


def progress_enabled(quiet: bool = False, no_progress: bool = False, stream=None) -> bool:
    """Decide whether a progress bar should be drawn.

    Parameters
    ----------
    quiet : bool
        ``-q``: never.
    no_progress : bool
        ``--no-progress``: never.
    stream : file, optional
        Where the bar would go (default ``sys.stderr``); it must be a terminal.

    Returns
    -------
    bool
    """
    if quiet or no_progress:
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "--:--"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class ProgressBar:
    """A one-line text progress bar, drawn only when enabled.

    Parameters
    ----------
    total : int
        Number of items.
    label : str
        Text before the bar ("particles", "figures").
    enabled : bool, optional
        Draw or not; default :func:`progress_enabled` on ``stream`` (a TTY).
    stream : file, optional
        Where to draw (default ``sys.stderr``).
    width : int
        Characters of the bar itself.
    min_interval_s : float
        Redraw at most this often (the last item is always drawn).

    Notes
    -----
    Call the object once per finished item: ``bar(item_id, status)``; a status other than
    ``"ok"``, ``"drawn"`` or ``"reused"`` counts as failed. ``done`` and ``failed`` are
    counted even when the bar is not drawn.
    """

    OK_STATUSES = frozenset({"ok", "drawn", "reused", "skipped", "resumed"})

    def __init__(self, total: int, label: str = "", *, enabled: bool | None = None,
                 stream=None, width: int = 28, min_interval_s: float = 0.1):
        if isinstance(total, bool) or not isinstance(total, (int, np.integer)) or total < 0:
            from qrspec.errors import QrspecError

            raise QrspecError(f"total={total!r} must be an integer >= 0")
        self.total = int(total)
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.enabled = progress_enabled(stream=self.stream) if enabled is None else bool(enabled)
        self.width = int(width)
        self.min_interval_s = float(min_interval_s)
        self.done = 0
        self.failed = 0
        self.last_item = ""
        self._t0 = time.monotonic()
        self._last_draw = -math.inf
        self._drawn = False

    def __call__(self, item: str = "", status: str = "ok") -> None:
        """One item finished (``status`` "ok", "drawn", "reused", ... or "failed")."""
        self.done += 1
        self.last_item = str(item)
        if status not in self.OK_STATUSES:
            self.failed += 1
        now = time.monotonic()
        if self.enabled and (self.done >= self.total
                             or now - self._last_draw >= self.min_interval_s):
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        """Return the text of the bar as it would be drawn now."""
        now = time.monotonic() if now is None else now
        frac = min(1.0, self.done / self.total) if self.total else 1.0
        n_fill = int(round(frac * self.width))
        elapsed = now - self._t0
        eta = elapsed / self.done * (self.total - self.done) if self.done else math.nan
        parts = [f"{self.label} " if self.label else "",
                 f"[{'#' * n_fill}{'.' * (self.width - n_fill)}] {self.done}/{self.total}"]
        if self.failed:
            parts.append(f"  {self.failed} failed")
        parts.append(f"  {_clock(elapsed)} elapsed")
        if self.done < self.total:
            parts.append(f", {_clock(eta)} left")
        if self.last_item:
            parts.append(f"  {self.last_item[:30]}")
        return "".join(parts)

    def _draw(self, now: float) -> None:
        text = self.line(now)
        # pad to clear a longer previous line; \r returns to the start of the line
        self.stream.write("\r" + text.ljust(getattr(self, "_width_drawn", 0)))
        self._width_drawn = len(text)
        self.stream.flush()
        self._last_draw = now
        self._drawn = True

    def close(self) -> None:
        """End the bar's line (only if something was drawn)."""
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _fmt(v: float, digits: int = 3) -> str:
    return f"{v:.{digits}g}" if math.isfinite(v) else "-"


def format_group_table(results) -> str:
    """Per-group table for the end of a batch: the store's group statistics.

    Columns: group, n (particles), ok, failed, and the medians of gated g2(0), neutral
    tau_X (ns) and n_c over the ok particles with a value, each followed by that count in
    brackets. When the statistics leave particles out (a filter or an exclusion list), a
    column "used" counts the ok particles they are over, and the note says why.

    Parameters
    ----------
    results : BatchTables, Results or ndarray
        :class:`qrspec.app.batch_tables.BatchTables` or :class:`qrspec.store.hdf5.Results`:
        their stored ``/groups`` (the statistics the file holds, with its filter and
        exclusions); or ``/summary`` rows (text columns ``str``), whose statistics are
        computed by the store (:func:`qrspec.store.hdf5.group_statistics`).

    Returns
    -------
    str
        Aligned plain text, one header line, one line per group and a note line.
    """
    from qrspec.app.batch_tables import store_group_statistics

    groups = getattr(results, "groups", None)
    attrs = getattr(results, "attrs", {}) or {}
    if groups is None or not getattr(groups, "size", 0) or "n_selected" not in (
            groups.dtype.names or ()):
        summary = getattr(results, "summary", results)
        groups = store_group_statistics(summary)
    selected = bool(attrs.get("filter") or attrs.get("exclude")) and groups.size and bool(
        np.any(groups["n_selected"] != groups["n_ok"]))
    head = ["group", "n", "ok", "failed"] + (["used"] if selected else []) + [
        "g2(0) gated", "tau_X0 [ns]", "n_c"]
    rows = [head]
    for g in groups:
        cells = [str(g["group"]) or "(none)", str(int(g["n_particles"])), str(int(g["n_ok"])),
                 str(int(g["n_particles"] - g["n_ok"]))]
        if selected:
            cells.append(str(int(g["n_selected"])))
        for col, digits in (("g2_zero_gated", 2), ("tau_x_neutral_ns", 3), ("n_c_mean", 3)):
            n = int(g[f"{col}_n"])
            cells.append(f"{_fmt(float(g[f'{col}_median']), digits)} ({n})")
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
             for r in rows]
    note = "medians over ok particles with a value (how many in brackets)"
    why = []
    if attrs.get("filter"):
        why.append(f"filter: {attrs['filter']}")
    if attrs.get("exclude"):
        import json

        try:
            n_ex = len(json.loads(attrs["exclude"]).get("particles", []))
        except (ValueError, AttributeError):
            n_ex = 0
        why.append(f"{n_ex} particles excluded")
    if why:
        note += "; " + ", ".join(why)
    lines.append(note)
    return "\n".join(lines)
