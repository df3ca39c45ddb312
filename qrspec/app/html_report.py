"""A static, self-contained HTML report of a results file (``qrspec report --html OUTDIR``).

Open ``OUTDIR/index.html`` in a browser: no server, no network, no CDN (one local CSS and one
local JS file). Pages:

* ``index.html`` -- every particle in a sortable, filterable table (every ``/summary``
  column, values with their standard errors, undefined values blank, status and flags),
  thumbnails of the particle figures, a checkbox per particle to exclude it, and a button
  that saves the exclusion list as JSON (``{"format": "qrspec-exclude", ...}``, read by
  :func:`qrspec.app.exclude.read_exclusion_file`, i.e. ``batch``/``report --exclude FILE``).
* ``groups.html`` -- the batch figures (:mod:`qrspec.app.batch_figures`) and the group
  statistics of ``/groups`` (recomputed by the store without the excluded particles when
  ``exclude`` is given).
* ``group/<group>.html`` -- one group: its statistics and a gallery of its particles.
* ``particle/<id>.html`` -- one particle: its figure, every number with unit and
  description, and its flags.

Particle figures are drawn by a callable ``figure(results_path, particle_id, out_png)``
(default :func:`default_particle_figure`, the figure of :mod:`qrspec.app.plots`), in a process
pool with ``jobs > 1``; a figure that fails becomes a message on its page, never a stopped
report. Figures of a previous report of the same results file (same SHA-256, same figure
callable) in ``outdir`` are reused. The site is built in a hidden folder beside ``outdir``
and renamed into place at the end, so ``outdir`` is never left half-written.
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import logging
import math
import os
import re
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from glob import escape as glob_escape
from importlib import resources
from pathlib import Path

import numpy as np

from qrspec.app.batch_tables import BatchTables, load_batch_tables, value_columns
from qrspec.errors import OutputError, QrspecError

__all__ = ["write_html_report", "HtmlReport", "default_particle_figure", "MANIFEST"]

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_FORMAT = "qrspec-html-report"
_VERSION = 1
_ASSETS = ("report.css", "report.js")
_NONE = "(none)"  # how a particle without a group is shown
_FRONT_COLUMNS = ("particle_id", "group", "status", "error")  # first, in this order
_BATCH_CAPTIONS = {
    "group_summary": "Mean intensity and mean charging number per group (paper Fig. 2h): group "
                     "mean ± standard error of the mean; n counts the particles with a value "
                     "of each quantity.",
    "auger_charge": "Charged biexciton Auger lifetime against charging number per particle, "
                    "with the neutral reference at n_c = 0 and the charge-model curve at each "
                    "group's median neutral tau_A,XX0.",
    "g2_histograms": "Gated g2(0) per group (filled) and raw g2(0) (outline); dotted: 0.5.",
    "population": "Per-group distributions of the neutral lifetimes, the neutral and charged "
                  "biexciton Auger lifetimes and the dwell-time exponents: particles (dots) "
                  "and group mean ± SEM; the numbers count the particles with a value.",
    "threshold_map": "Lasing threshold <N_las>(<n_c>, tau_A,XX0) of the charge model (paper "
                     "Fig. 1b) with each group's mean ± SEM marked.",
}


@dataclass(frozen=True)
class HtmlReport:
    """What :func:`write_html_report` wrote.

    Attributes
    ----------
    outdir : Path
        The site folder.
    index : Path
        ``outdir/index.html``.
    n_particles : int
        Particles in the table.
    n_drawn, n_reused, n_failed : int
        Particle figures drawn now, reused from the previous report, and failed.
    n_excluded : int
        Particles excluded from the group statistics (``exclude``).
    seconds : float
        Wall time.
    """

    outdir: Path
    index: Path
    n_particles: int
    n_drawn: int
    n_reused: int
    n_failed: int
    n_excluded: int
    seconds: float


def default_particle_figure(results_path, particle_id: str, out_path, *, dpi: int = 100):
    """Draw the particle figure of :mod:`qrspec.app.plots` as PNG (the report's default).

    Parameters
    ----------
    results_path : str or Path
        The results file.
    particle_id : str
        A particle of it.
    out_path : str or Path
        PNG file to write.
    dpi : int
        Resolution.
    """
    from qrspec.app.plots import plot_particle

    plot_particle(results_path, particle_id, out_path, fmt="png", dpi=dpi)


# ------------------------------------------------------------------------------- helpers
_SAFE = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,79}")


def _file_id(name: str, prefix: str = "") -> str:
    """A file-name-safe, collision-free stem for a particle id or a group name."""
    if name and _SAFE.fullmatch(name):
        return prefix + name
    stem = re.sub(r"[^A-Za-z0-9_.\-]+", "_", name).strip("._")[:40] or "_"
    return f"{prefix}{stem}-{hashlib.sha1(name.encode('utf-8')).hexdigest()[:8]}"


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _fmt(value, err=math.nan) -> str:
    """``value ± err`` with two significant digits of the error, or "" for an undefined value.

    Two significant digits is the particle figures' rule.
    """
    from qrspec.app.figure_style import format_pm

    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        return ""
    try:
        e = float(err)
    except (TypeError, ValueError):
        e = math.nan
    if math.isfinite(e) and e <= 1e-9 * abs(v):  # a rounding-level spread, not an error
        e = math.nan
    return format_pm(v, e)


def _cell(row, name: str, err: str | None) -> tuple[str, str, bool]:
    """(sort key for data-v, display text, defined) of one summary cell."""
    kind = row.dtype[name].kind
    v = row[name]
    if kind in "US":
        s = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
        return s, s, s != ""
    if kind == "b":
        return ("1" if v else "0"), ("yes" if v else "no"), True
    if kind in "iu":
        iv = int(v)
        if iv < 0:  # the summary's "missing" integer
            return "", "", False
        return str(iv), f"{iv:,}", True
    fv = float(v)
    if not math.isfinite(fv):
        return "", "", False
    text = _fmt(fv, row[err] if err else math.nan)
    return repr(fv), text, True


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _json_script(obj) -> str:
    # JSON inside <script>: "</" would end the element
    return json.dumps(obj, ensure_ascii=False).replace("</", "<\\/")


def _page(title: str, body: str, *, depth: int, config: dict | None = None) -> str:
    up = "../" * depth
    data = (f'<script id="report-data" type="application/json">{_json_script(config)}'
            "</script>\n") if config is not None else ""
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_e(title)}</title>\n"
            f"<link rel=\"stylesheet\" href=\"{up}assets/report.css\">\n{data}"
            f"<script src=\"{up}assets/report.js\" defer></script>\n</head>\n<body>\n"
            f"<div id=\"js-errors\" role=\"alert\"></div>\n{body}\n</body>\n</html>\n")


def _nav(depth: int, tables: BatchTables, groups: list[str], slugs: dict) -> str:
    up = "../" * depth
    links = [f'<a href="{up}index.html">Particles</a>', f'<a href="{up}groups.html">Groups</a>']
    links += [f'<a href="{up}group/{slugs[g]}.html">{_e(g or "(none)")}</a>' for g in groups]
    return "<nav>" + " ".join(links) + "</nav>"


def _col_title(tables: BatchTables, name: str) -> str:
    unit = tables.units.get(name, "")
    desc = tables.descriptions.get(name, "")
    return desc + (f" [{unit}]" if unit else "")


# ------------------------------------------------------------------------------- figures
def _thumbnail(png: Path, thumb: Path, width_px: int) -> None:
    from PIL import Image

    with Image.open(png) as im:
        im = im.convert("RGB")
        h = max(1, round(im.height * width_px / im.width))
        im.resize((width_px, h), Image.LANCZOS).save(thumb, "PNG", optimize=True)


def _render_particle(figure, results_path: str, pid: str, fig_path: str, thumb_path: str,
                     thumb_px: int) -> tuple[str, str, str]:
    """Pool task: draw one particle figure and its thumbnail -> (pid, status, error)."""
    try:
        figure(results_path, pid, fig_path)
        if not os.path.isfile(fig_path):
            raise QrspecError(f"figure callable wrote no file {fig_path}")
        _thumbnail(Path(fig_path), Path(thumb_path), thumb_px)
        return pid, "drawn", ""
    except Exception as exc:  # noqa: BLE001  one bad figure never stops a report
        for p in (fig_path, thumb_path):
            if os.path.exists(p):
                os.unlink(p)
        return pid, "failed", f"{type(exc).__name__}: {exc}"


def _render_batch(tables: BatchTables, fig_dir: str, dpi: int, threshold_kw: dict) -> dict:
    """Pool task: the batch figures -> {name: "" (written) or the error}.

    They are drawn at 1.6 x ``dpi`` (they are smaller figures than the particle figure, shown as
    wide).
    """
    from qrspec.app import batch_figures as bf

    out = {}
    for name in bf.BATCH_FIGURES:
        try:
            bf.write_batch_figures(tables, fig_dir, which=(name,), fmt="png",
                                   dpi=round(1.6 * dpi), threshold_kw=threshold_kw)
            out[name] = ""
        except Exception as exc:  # noqa: BLE001  shown on the groups page instead
            logger.warning("batch figure %s failed: %s: %s", name, type(exc).__name__, exc)
            out[name] = f"{type(exc).__name__}: {exc}"
    return out


def _figure_key(figure) -> str:
    f = figure
    parts = []
    while isinstance(f, functools.partial):
        parts.append(repr(sorted(f.keywords.items())) + repr(f.args))
        f = f.func
    return f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', repr(f))}" + \
        "".join(parts)


def _old_manifest(outdir: Path) -> dict | None:
    try:
        m = json.loads((outdir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) and m.get("format") == _FORMAT else None


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _remove_stale_builds(outdir: Path) -> None:
    """Delete build folders of dead writers, left by a report killed with SIGKILL.

    Build folders are named ``.<name>.<pid>.partial`` / ``.old``.
    """
    from qrspec.io.atomic import _pid_alive

    for p in outdir.parent.glob(f".{glob_escape(outdir.name)}.*"):
        m = re.fullmatch(rf"\.{re.escape(outdir.name)}\.(\d+)\.(partial|old)", p.name)
        if m and p.is_dir() and int(m.group(1)) != os.getpid() and \
                not _pid_alive(int(m.group(1))):
            shutil.rmtree(p, ignore_errors=True)
            logger.info("%s: removed the build folder of a dead report writer", p)


def _check_outdir(outdir: Path) -> dict | None:
    if outdir.exists() and not outdir.is_dir():
        raise QrspecError(f"outdir={os.fspath(outdir)!r} exists and is not a folder")
    if outdir.is_dir() and any(outdir.iterdir()):
        old = _old_manifest(outdir)
        if old is None:
            raise QrspecError(f"outdir={os.fspath(outdir)!r} exists, is not empty and is not a "
                              f"qrspec HTML report (no {MANIFEST}); choose a new or empty "
                              "folder")
        return old
    return None


# ------------------------------------------------------------------------------- pages
def _index_page(tables, groups, slugs, fids, fig_status, config, excluded_note) -> str:
    s = tables.summary
    cols = value_columns(s.dtype.names or ())
    front = [c for c in _FRONT_COLUMNS if c in s.dtype.names]
    text_cols = {n for n in s.dtype.names if s.dtype[n].kind in "US"}
    numeric = [(n, e) for n, e in cols if n not in text_cols]
    # other text columns (source, provenance labels) after the numbers
    back = [n for n, _ in cols if n in text_cols and n not in _FRONT_COLUMNS]
    head = ['<th class="nosort text" data-col="_exclude" title="exclude from group '
            'statistics">excl.</th>', '<th class="nosort thumb" data-col="_thumb">figure</th>']
    for n in front + [n for n, _ in numeric] + back:
        err = dict(cols).get(n)
        title = _col_title(tables, n) + (f"; shown ± {err}" if err else "")
        kind = "text" if n in text_cols else "num"
        head.append(f'<th class="{"text" if kind == "text" else ""}" data-col="{_e(n)}" '
                    f'data-type="{kind}" title="{_e(title)}">'
                    f'{_e("flags" if n == "error" else n)}</th>')
    body_rows = []
    for row in s:
        pid = str(row["particle_id"])
        fid = fids[pid]
        status = str(row["status"])
        search = " ".join(str(row[c]) for c in front + back).lower()
        cells = [f'<td class="text"><input type="checkbox" class="exclude" '
                 f'aria-label="exclude {_e(pid)}"><input type="text" class="reason" '
                 f'placeholder="reason" aria-label="reason for excluding {_e(pid)}"></td>']
        if fig_status.get(pid) in ("drawn", "reused"):
            cells.append(f'<td class="thumb"><a href="particle/{fid}.html"><img loading="lazy" '
                         f'src="fig/thumb_{fid}.png" alt="figure of {_e(pid)}"></a></td>')
        else:
            cells.append('<td class="thumb nan">—</td>')
        for n in front:
            v = str(row[n])
            if n == "particle_id":
                cells.append(f'<td class="text id" data-v="{_e(v)}">'
                             f'<a href="particle/{fid}.html">{_e(v)}</a></td>')
            elif n == "status":
                cells.append(f'<td class="text" data-v="{_e(v)}"><span class="status '
                             f'{_e(v)}">{_e(v)}</span></td>')
            elif n == "error":
                cells.append(f'<td class="text flags" data-v="{_e(v)}" title="{_e(v)}">'
                             f"{_e(v)}</td>")
            else:
                cells.append(f'<td class="text" data-v="{_e(v)}">{_e(v or "(none)")}</td>')
        for n, err in numeric:
            key, text, ok = _cell(row, n, err)
            nan_class = "" if ok else ' class="nan"'
            cells.append(f'<td data-v="{_e(key)}"{nan_class}>{_e(text) if ok else "—"}</td>')
        for n in back:
            v = str(row[n])
            cls = "text source" if n == "source" else "text"
            cells.append(f'<td class="{cls}" data-v="{_e(v)}" title="{_e(v)}">'
                         f"<bdi>{_e(v)}</bdi></td>")
        body_rows.append(f'<tr data-id="{_e(pid)}" data-group="{_e(row["group"] or _NONE)}" '
                         f'data-status="{_e(status)}" data-search="{_e(search)}">'
                         + "".join(cells) + "</tr>")
    n_ok = int(np.sum(s["status"] == "ok")) if s.size else 0
    group_opts = "".join(f'<option value="{_e(g or _NONE)}">{_e(g or _NONE)}</option>'
                         for g in groups)
    statuses = sorted(set(str(x) for x in s["status"])) if s.size else []
    status_opts = "".join(f'<option value="{_e(x)}">{_e(x)}</option>' for x in statuses)
    name = Path(tables.path).name
    filter_help = ("Words match id, group, status, flags and source. Terms like "
                   "g2_zero_gated<0.5, rate_cps>=2e4, group=undoped or status!=ok compare a "
                   "column. All terms must match.")
    header = "\n".join([
        "<header>",
        f"<h1>qrspec report: {_e(name)}</h1>",
        _nav(0, tables, groups, slugs),
        f'<div class="meta">{s.size} particles ({n_ok} ok, {s.size - n_ok} not ok) in '
        f'{len(groups)} groups; results written {_e(tables.attrs.get("created_utc", "?"))} '
        f'by qrspec {_e(tables.attrs.get("qrspec_version", "?"))}. {excluded_note}</div>',
        '<div class="controls">',
        '<input type="search" id="filter" aria-label="filter particles" '
        f'placeholder="{_e("filter: words, or e.g. g2_zero_gated<0.5 n_c_mean>5")}" '
        f'title="{_e(filter_help)}">',
        '<select id="group-filter" aria-label="group"><option value="">all groups</option>'
        f"{group_opts}</select>",
        '<select id="status-filter" aria-label="status"><option value="">any status</option>'
        f"{status_opts}</select>",
        '<select id="excluded-filter" aria-label="excluded">'
        '<option value="">excluded and kept</option><option value="only">excluded only'
        '</option><option value="none">kept only</option></select>',
        '<label><input type="checkbox" id="show-thumbs" checked> thumbnails</label>',
        '<span class="count" id="count"></span>',
        "</div>",
        '<div class="controls">',
        '<span><b id="n-excluded">0</b> excluded</span>',
        '<button type="button" id="save-exclude">Save exclusion list</button>',
        '<a id="exclude-link" download="exclude.json" hidden>exclude.json</a>',
        '<button type="button" id="clear-exclude">Clear</button>',
        '<label>load list: <input type="file" id="load-exclude" '
        'accept=".json,application/json"></label>',
        f'<span class="hint">then: <code>qrspec report {_e(name)} --html OUTDIR --exclude '
        "exclude.json</code> recomputes the group statistics without them</span>",
        "</div>",
        "</header>"])
    table = ('<div class="table-wrap"><table class="particles" id="particles">\n<thead><tr>'
             + "".join(head) + "</tr></thead>\n<tbody>\n" + "\n".join(body_rows)
             + "\n</tbody></table></div>")
    details = (f"<details><summary>exclusion list as JSON</summary><textarea id=\"exclude-json\" "
               f"rows=\"8\" cols=\"80\" readonly></textarea></details>\n"
               f"<details><summary>analysis configuration</summary><pre>"
               f"{_e(json.dumps(tables.config, indent=1, sort_keys=True))}</pre></details>")
    return _page(f"qrspec report: {name}", header + "\n" + table + "\n" + details, depth=0,
                 config=config)


def _group_stat_columns(groups_arr) -> list[str]:
    names = groups_arr.dtype.names or ()
    return [n[:-5] for n in names if n.endswith("_mean")
            and all(f"{n[:-5]}_{s}" in names for s in ("n", "median", "sem"))]


def _stats_table(tables: BatchTables, grows, units: dict, excl_counts: dict | None) -> str:
    if not len(grows):
        return "<p>No groups.</p>"
    cols = _group_stat_columns(grows)
    head = "<tr><th>quantity</th>" + "".join(
        f'<th>{_e(str(g["group"]) or "(none)")}</th>' for g in grows) + "</tr>"
    rows = [("particles", [str(int(g["n_particles"])) for g in grows]),
            ("status ok", [str(int(g["n_ok"])) for g in grows])]
    if excl_counts is not None:
        rows.append(("excluded (not counted)",
                     [str(excl_counts.get(str(g["group"]), 0)) for g in grows]))
    if "frac_single_emitter" in grows.dtype.names:
        rows.append(("single-emitter fraction (of ok)",
                     [_fmt(g["frac_single_emitter"]) or "—" for g in grows]))
    out = []
    for label, vals in rows:
        out.append(f"<tr><th>{_e(label)}</th>" + "".join(f'<td class="num">{_e(v)}</td>'
                                                         for v in vals) + "</tr>")
    for c in cols:
        unit = units.get(c, "")
        cells = []
        for g in grows:
            mean, sem, med, n = (float(g[f"{c}_mean"]), float(g[f"{c}_sem"]),
                                 float(g[f"{c}_median"]), int(g[f"{c}_n"]))
            if n == 0:
                cells.append('<td class="num nan">— (n = 0)</td>')
                continue
            cells.append(f'<td class="num">{_e(_fmt(mean, sem))}<br><span class="meta">'
                         f"median {_e(_fmt(med))}, n = {n}</span></td>")
        out.append(f'<tr><th title="{_e(tables.descriptions.get(c, ""))}">{_e(c)}'
                   f'{f" [{_e(unit)}]" if unit else ""}</th>' + "".join(cells) + "</tr>")
    return ('<table class="kv">' + head + "".join(out) + "</table>\n<p class=\"meta\">mean ± "
            "standard error of the mean over particles with status ok and a finite value "
            "(n); the statistics of the results store.</p>")


def _groups_page(tables, gtables, groups, slugs, batch_status, excluded_note,
                 excl_counts, config) -> str:
    figs = []
    for name, err in batch_status.items():
        cap = _e(_BATCH_CAPTIONS.get(name, name))
        if err:
            figs.append(f'<figure><p class="error">batch figure {_e(name)} could not be drawn: '
                        f"{_e(err)}</p><figcaption>{cap}</figcaption></figure>")
        else:
            figs.append(f'<figure id="fig-{_e(name)}"><a href="fig/batch_{_e(name)}.png">'
                        f'<img src="fig/batch_{_e(name)}.png" alt="{_e(name)}"></a>'
                        f"<figcaption>{cap}</figcaption></figure>")
    body = (f"<header><h1>Groups of {_e(Path(tables.path).name)}</h1>"
            f"{_nav(0, tables, groups, slugs)}<div class=\"meta\">{excluded_note}</div></header>"
            "<h2>Group statistics</h2>"
            f"{_stats_table(tables, gtables.groups, tables.units, excl_counts)}"
            "<h2>Batch figures</h2>" + (f'<div class="figs">{"".join(figs)}</div>' if figs
                                         else "<p>No batch figures.</p>"))
    return _page(f"Groups: {Path(tables.path).name}", body, depth=0, config=config)


def _group_page(tables, gtables, group, groups, slugs, fids, fig_status, excluded_note,
                excl_counts, config) -> str:
    grows = gtables.groups[gtables.groups["group"] == group] if gtables.groups.size else \
        gtables.groups
    ids = [str(r["particle_id"]) for r in tables.summary if str(r["group"]) == group]
    gallery = []
    for pid in ids:
        fid = fids[pid]
        img = (f'<img loading="lazy" src="../fig/thumb_{fid}.png" alt="">'
               if fig_status.get(pid) in ("drawn", "reused") else "")
        gallery.append(f'<a href="../particle/{fid}.html" data-id="{_e(pid)}">{img}'
                       f"{_e(pid)}</a>")
    body = (f"<header><h1>Group {_e(group or '(none)')}</h1>{_nav(1, tables, groups, slugs)}"
            f"<div class=\"meta\">{len(ids)} particles. {excluded_note} Batch figures: "
            f"<a href=\"../groups.html\">all groups</a>.</div></header>"
            f"<h2>Statistics</h2>{_stats_table(tables, grows, tables.units, excl_counts)}"
            f"<h2>Particles</h2><div class=\"gallery\">{''.join(gallery)}</div>")
    return _page(f"Group {group}", body, depth=1, config=config)


def _particle_page(tables, i, groups, slugs, fids, fig_status, fig_errors, config) -> str:
    s = tables.summary
    row = s[i]
    pid = str(row["particle_id"])
    fid = fids[pid]
    group = str(row["group"])
    prev_id = str(s[i - 1]["particle_id"]) if i > 0 else None
    next_id = str(s[i + 1]["particle_id"]) if i + 1 < s.size else None
    pn = []
    if prev_id is not None:
        pn.append(f'<a href="{fids[prev_id]}.html" rel="prev">← {_e(prev_id)}</a>')
    if next_id is not None:
        pn.append(f'<a href="{fids[next_id]}.html" rel="next">{_e(next_id)} →</a>')
    status = str(row["status"])
    flags = [f for f in str(row["error"]).split("; ") if f] if "error" in s.dtype.names else []
    if fig_status.get(pid) in ("drawn", "reused"):
        fig = (f'<figure><a href="../fig/particle_{fid}.png"><img src="../fig/particle_{fid}.png" '
               f'alt="figure of {_e(pid)}"></a></figure>')
    else:
        fig = (f'<p class="error">figure not drawn: {_e(fig_errors.get(pid, "no figure"))}'
               "</p>")
    kv = []
    for n, err in value_columns(s.dtype.names):
        if n in ("particle_id", "error"):
            continue
        key, text, ok = _cell(row, n, err)
        kv.append(f'<tr><th>{_e(n)}</th><td class="num{"" if ok else " nan"}">'
                  f'{_e(text) if ok else "—"}</td><td>{_e(tables.units.get(n, ""))}</td>'
                  f'<td>{_e(tables.descriptions.get(n, ""))}'
                  f'{f" (± {_e(err)})" if err else ""}</td></tr>')
    flag_html = ("<ul class=\"flags\">" + "".join(f"<li>{_e(f)}</li>" for f in flags)
                 + "</ul>") if flags else "<p>No flags.</p>"
    title = "Error" if status != "ok" else "Flags"
    body = (f"<header><h1>{_e(pid)} <span class=\"status {_e(status)}\">{_e(status)}</span>"
            f"</h1>{_nav(1, tables, groups, slugs)}<div class=\"meta\">group "
            f"<a href=\"../group/{slugs[group]}.html\">{_e(group or '(none)')}</a> · "
            f"{' · '.join(pn)} · <label><input type=\"checkbox\" id=\"exclude-this\" "
            f"data-id=\"{_e(pid)}\"> excluded</label></div></header>\n{fig}\n"
            f"<h2>{title}</h2>{flag_html}\n<h2>Numbers</h2><table class=\"kv\"><tr><th>column"
            f"</th><th>value</th><th>unit</th><th>description</th></tr>{''.join(kv)}</table>")
    return _page(f"{pid}: qrspec report", body, depth=1, config=config)


# ------------------------------------------------------------------------------- main
def write_html_report(results, outdir, *, figure=None, jobs: int = 1, progress=None,
                      reuse: bool = True, exclude=None, dpi: int = 100, thumb_px: int = 360,
                      threshold_kw: dict | None = None) -> HtmlReport:
    """Write the static HTML report of a results file into ``outdir``.

    Parameters
    ----------
    results : str or Path
        A qrspec results file.
    outdir : str or Path
        The site folder: new, empty, or a previous report (replaced as a whole at the end).
    figure : callable, optional
        ``figure(results_path, particle_id, out_png)`` writes one particle's PNG (default
        :func:`default_particle_figure` at ``dpi``). Must be picklable for ``jobs > 1``.
    jobs : int
        Processes drawing figures (1: in this process).
    progress : callable, optional
        ``progress(item, status)`` after each figure: the particle id with "drawn",
        "reused" or "failed", and "batch figures" with "ok", "reused" or "failed" (the
        signature of :class:`qrspec.app.progress.ProgressBar`); ``n_particles + 1`` calls.
    reuse : bool
        Reuse the figures of a previous report in ``outdir`` made from the same results file
        (same SHA-256): particle figures drawn by the same figure callable, batch figures
        made with the same exclusions, map settings and dpi.
    exclude : ExclusionList, str, Path or dict, optional
        Particles to leave out of the group statistics and batch figures (they stay in the
        table, ticked). See :mod:`qrspec.app.exclude`.
    dpi : int
        Resolution of the default particle figure and of the batch figures.
    thumb_px : int
        Width of the thumbnails (the table shows their top strip, the trajectory).
    threshold_kw : dict, optional
        Passed to :func:`qrspec.app.batch_figures.threshold_map_figure` (grids, lasing
        settings).

    Returns
    -------
    HtmlReport

    Raises
    ------
    QrspecError
        Not a results file, bad options, an unreadable exclusion list or one naming
        particles not in the file, or ``outdir`` holding something that is not a report.
    OutputError
        The site cannot be written (disk full, permissions); a previous report in
        ``outdir`` is then left as it was.
    """
    from qrspec.app.exclude import as_exclusion, exclude_from_tables
    from qrspec.io.files import sha256_file

    t_start = time.perf_counter()
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise QrspecError(f"jobs={jobs!r} must be an integer >= 1")
    if isinstance(thumb_px, bool) or not isinstance(thumb_px, int) or not 16 <= thumb_px <= 2000:
        raise QrspecError(f"thumb_px={thumb_px!r} must be an integer in [16, 2000]")
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not 10 <= dpi <= 2400:
        raise QrspecError(f"dpi={dpi!r} must be an integer in [10, 2400]")
    if figure is not None and not callable(figure):
        raise QrspecError(f"figure={figure!r} must be a callable "
                          "figure(results_path, particle_id, out_png)")
    if isinstance(results, BatchTables):
        results = results.path
    tables = load_batch_tables(results)
    results_path = tables.path
    outdir = Path(outdir)
    old = _check_outdir(outdir)
    figure = functools.partial(default_particle_figure, dpi=dpi) if figure is None else figure
    sha = sha256_file(results_path)
    excl = as_exclusion(exclude) if exclude is not None else None
    gtables = exclude_from_tables(tables, excl) if excl is not None else tables
    ids = tables.particle_ids
    excluded = set(excl.particles) if excl else set()
    groups = sorted(set(str(g) for g in tables.summary["group"])) if tables.summary.size else []
    slugs = {g: _file_id(g, "") if g else "_none" for g in groups}
    fids = {pid: _file_id(pid) for pid in ids}
    if len(set(fids.values())) < len(fids):
        raise QrspecError(f"{results_path}: particle ids are not unique")
    # the browser keeps the user's ticks under this key: per results file and starting list,
    # so a rebuild keeps unsaved ticks and a rebuild with another --exclude starts from it
    report_id = sha[:16] + "-" + hashlib.sha256(json.dumps(
        [sorted(excluded), sorted((excl.reason if excl else {}).items())]).encode()
    ).hexdigest()[:8]
    config = {"report_id": report_id, "results": Path(results_path).name,
              "initial_exclude": {"particles": [p for p in ids if p in excluded],
                                  "reason": dict(excl.reason) if excl else {}}}
    fkey = _figure_key(figure)

    try:
        outdir.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_builds(outdir)
        build = outdir.parent / f".{outdir.name}.{os.getpid()}.partial"
        if build.exists():
            shutil.rmtree(build)
        fig_dir = build / "fig"
        fig_dir.mkdir(parents=True)
    except OSError as exc:
        raise OutputError(outdir, exc.strerror or str(exc), exc.errno) from None
    fig_status: dict[str, str] = {}
    fig_errors: dict[str, str] = {}
    try:
        # ---- particle figures: reuse, then draw the rest (batch figures in the same pool)
        todo = []
        old_ok = (old is not None and reuse and old.get("results_sha256") == sha
                  and old.get("figure") == fkey and old.get("thumb_px") == thumb_px)
        for pid in ids:
            fid = fids[pid]
            src = [outdir / "fig" / f"{k}_{fid}.png" for k in ("particle", "thumb")]
            if old_ok and old.get("particles", {}).get(pid) in ("drawn", "reused") and \
                    all(p.is_file() for p in src):
                for p in src:
                    _link_or_copy(p, fig_dir / p.name)
                fig_status[pid] = "reused"
                if progress:
                    progress(pid, "reused")
            else:
                todo.append(pid)
        tkw = dict(threshold_kw or {})
        # the batch figures depend on the file, the exclusions, the map settings and dpi
        batch_key = hashlib.sha256(json.dumps(
            [sha, sorted(excluded & set(ids)), repr(sorted(tkw.items())), dpi],
            default=repr).encode()).hexdigest()
        batch_status = None
        old_batch = old.get("batch") if old and reuse and old.get("batch_key") == batch_key \
            else None
        if isinstance(old_batch, dict) and old_batch and not any(old_batch.values()):
            src = [outdir / "fig" / f"batch_{name}.png" for name in old_batch]
            if all(p.is_file() for p in src):
                for p in src:
                    _link_or_copy(p, fig_dir / p.name)
                batch_status = dict(old_batch)
                if progress:
                    progress("batch figures", "reused")
        args = [(figure, results_path, pid, str(fig_dir / f"particle_{fids[pid]}.png"),
                 str(fig_dir / f"thumb_{fids[pid]}.png"), thumb_px) for pid in todo]
        if jobs == 1:
            if batch_status is None:
                batch_status = _render_batch(gtables, str(fig_dir), dpi, tkw)
                if progress:
                    progress("batch figures", "failed" if any(batch_status.values()) else "ok")
            for a in args:
                pid, st, err = _render_particle(*a)
                fig_status[pid], fig_errors[pid] = st, err
                if progress:
                    progress(pid, st)
        else:
            with ProcessPoolExecutor(max_workers=min(jobs, len(args) + 1)) as ex:
                futs = {} if batch_status is not None else \
                    {ex.submit(_render_batch, gtables, str(fig_dir), dpi, tkw): None}
                futs.update({ex.submit(_render_particle, *a): a[2] for a in args})
                pending = set(futs)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fu in done:
                        if futs[fu] is None:
                            batch_status = fu.result()
                            if progress:
                                progress("batch figures",
                                         "failed" if any(batch_status.values()) else "ok")
                            continue
                        pid, st, err = fu.result()
                        fig_status[pid], fig_errors[pid] = st, err
                        if progress:
                            progress(pid, st)
        for pid, err in fig_errors.items():
            if err:
                logger.warning("figure of particle %s failed: %s", pid, err)

        # ---- pages
        assets = build / "assets"
        assets.mkdir()
        for name in _ASSETS:
            (assets / name).write_bytes(
                resources.files("qrspec.app").joinpath("_html", name).read_bytes())
        excl_counts = None
        excluded_note = ""
        if excl is not None:
            excl_counts = {}
            for r in tables.summary:
                if str(r["particle_id"]) in excluded:
                    excl_counts[str(r["group"])] = excl_counts.get(str(r["group"]), 0) + 1
            excluded_note = (f"Group statistics and batch figures leave out "
                             f"{sum(excl_counts.values())} excluded particles"
                             f"{' (' + _e(Path(excl.source).name) + ')' if excl.source else ''}.")
        _write_text(build / "index.html", _index_page(tables, groups, slugs, fids, fig_status,
                                                      config, excluded_note))
        pconfig = {"report_id": report_id}
        _write_text(build / "groups.html", _groups_page(tables, gtables, groups, slugs,
                                                        batch_status, excluded_note,
                                                        excl_counts, pconfig))
        for g in groups:
            _write_text(build / "group" / f"{slugs[g]}.html",
                        _group_page(tables, gtables, g, groups, slugs, fids, fig_status,
                                    excluded_note, excl_counts, pconfig))
        for i in range(tables.summary.size):
            pid = ids[i]
            _write_text(build / "particle" / f"{fids[pid]}.html",
                        _particle_page(tables, i, groups, slugs, fids, fig_status, fig_errors,
                                       pconfig))
        manifest = {"format": _FORMAT, "version": _VERSION, "results": results_path,
                    "results_sha256": sha, "figure": fkey, "thumb_px": thumb_px,
                    "batch_key": batch_key, "batch": batch_status,
                    "particles": fig_status, "created_unix_s": time.time()}
        _write_text(build / MANIFEST, json.dumps(manifest, indent=1))

        # ---- swap into place
        if outdir.exists():
            trash = outdir.parent / f".{outdir.name}.{os.getpid()}.old"
            os.replace(outdir, trash)
            try:
                os.replace(build, outdir)
            except OSError:
                os.replace(trash, outdir)
                raise
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(build, outdir)
    except OSError as exc:  # disk full, permissions: the old report (if any) is unchanged
        raise OutputError(outdir, exc.strerror or str(exc), exc.errno) from None
    finally:
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)
    n_drawn = sum(v == "drawn" for v in fig_status.values())
    n_reused = sum(v == "reused" for v in fig_status.values())
    return HtmlReport(outdir=outdir, index=outdir / "index.html", n_particles=len(ids),
                      n_drawn=n_drawn, n_reused=n_reused,
                      n_failed=sum(v == "failed" for v in fig_status.values()),
                      n_excluded=len(excluded & set(ids)),
                      seconds=time.perf_counter() - t_start)
