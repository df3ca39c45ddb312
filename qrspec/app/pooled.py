"""The second pass of ``batch``.

Rods without a neutral period inverted against their group's pooled neutral reference (issue 15).

A rod charged throughout (labels flag ``no_neutral``) has no tau_X0 / tau_XX0 of its own; the
charging stage then measures and stores its windows' lifetimes with NaN n_c
(:func:`qrspec.analysis.charging.invert_charging`). After every particle of the batch is
done, each group's particles with a reference of their own (source ``"particle"``) are pooled
(:func:`qrspec.charging.pool_neutral_references`: the mean in rates, with the *predictive*
covariance of one more rod, so the group's spread is in the error) and the rods without one
are inverted again from their stored windows (:func:`qrspec.analysis.charging.reinvert_charging`,
source ``"group"`` in ``neutral_reference_source``). A user reference (``tau_a_xx0_ns``) takes
precedence: nothing is pooled then. A group with fewer than ``MIN_POOLED`` references leaves
its rods uninverted, with a flag saying so.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

__all__ = ["apply_group_references", "MIN_POOLED"]

logger = logging.getLogger(__name__)

MIN_POOLED = 3  # a covariance from fewer particles is meaningless (pool_neutral_references)
NO_GROUP = "no group reference: only {k} particles of group {g!r} have a neutral reference " \
           "of their own (>= {m} needed)"


def _own_reference(row):
    """The particle's own NeutralReference from its summary row (None when it has none)."""
    from qrspec.charging import NeutralReference

    vals = [float(row[c]) for c in ("tau_x_neutral_ns", "tau_x_neutral_err_ns",
                                    "tau_xx_neutral_ns", "tau_xx_neutral_err_ns")]
    if not all(math.isfinite(v) and v > 0 for v in vals):
        return None
    return NeutralReference.from_particle(*vals)


def apply_group_references(output, sources: dict, parts_dir, config_json: str) -> int:
    """Invert the rods without a neutral reference against their group's pooled one.

    Parameters
    ----------
    output : path
        The merged results file of the batch.
    sources : dict
        particle_id -> file holding its result; updated for the particles rewritten.
    parts_dir : path
        Where the rewritten particles are written (``<particle_id>.h5``).
    config_json : str
        The batch's AnalysisConfig (JSON).

    Returns
    -------
    int
        Number of particles rewritten (the caller merges again when > 0).
    """
    from qrspec.analysis.charging import reinvert_charging
    from qrspec.analysis.config import AnalysisConfig
    from qrspec.charging import pool_neutral_references
    from qrspec.errors import QrspecError
    from qrspec.store.hdf5 import read_particle, read_results, write_particle_file

    config = AnalysisConfig.from_json(config_json)
    if config.charge_model.tau_a_xx0_ns is not None:  # the user's reference is used
        return 0
    rows = read_results(output).summary
    if rows.size == 0:
        return 0
    ok = rows[rows["status"] == "ok"]
    groups: dict[str, tuple[list, list]] = {}
    for row in ok:
        refs, needy = groups.setdefault(str(row["group"]), ([], []))
        source = str(row["neutral_reference_source"])
        if source == "particle":
            ref = _own_reference(row)
            if ref is not None:
                refs.append(ref)
        elif source in ("", "group") and int(row["n_charging_windows_measured"]) > 0:
            needy.append(str(row["particle_id"]))
    n_done = 0
    for g, (refs, needy) in groups.items():
        if not needy:
            continue
        pooled, why = None, ""
        if len(refs) >= MIN_POOLED:
            try:
                pooled = pool_neutral_references(refs, config.charge_model,
                                                 min_particles=MIN_POOLED,
                                                 note=f"group {g}: mean of {len(refs)} particles")
            except QrspecError as exc:  # e.g. the group's pooled Auger rate <= 0
                why = f"no group reference: {exc}"
        else:
            why = NO_GROUP.format(k=len(refs), g=g, m=MIN_POOLED)
        for pid in needy:
            a = read_particle(sources.get(pid, output), pid)
            c = a.charging
            if c is None or c.windows.t_start_s.size == 0:
                continue
            if pooled is not None:
                new = reinvert_charging(c, pooled, config)
            else:
                flags = tuple(f for f in c.flags if not f.startswith("no group reference"))
                new = dataclasses.replace(c, flags=(*flags, why))
            path = Path(parts_dir) / f"{pid}.h5"
            write_particle_file(path, dataclasses.replace(a, charging=new), config_json)
            sources[pid] = str(path)
            n_done += 1
            logger.info("%s: charging %s", pid, "inverted against the group reference of "
                        f"{g!r}" if pooled is not None else why)
    return n_done
