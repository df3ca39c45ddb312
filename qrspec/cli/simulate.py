"""``qrspec simulate`` and ``qrspec simulate-batch``: simulated rods as PTU + ground truth."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

PRESET_NAMES = ("undoped", "mn-doped", "neutral")
RECORD_TYPES = ("HydraHarp2T3", "GenericT3", "GenericT2", "HydraHarp2T2")


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _build_config(preset_name, config_path, duration_s, record_type):
    """Preset, then the JSON file's fields (deep-merged), then the explicit options."""
    from qrspec.errors import QrspecError
    from qrspec.simulate import SimulationConfig, preset

    d = preset(preset_name).to_dict()
    if config_path is not None:
        try:
            over = json.loads(Path(config_path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise click.BadParameter(f"cannot read JSON config: {exc}",
                                     param_hint="--config") from None
        if not isinstance(over, dict):
            raise click.BadParameter("the JSON config must be an object", param_hint="--config")
        d = _merge(d, over)
    if duration_s is not None:
        d["duration_s"] = duration_s
    if record_type is not None:
        d["record_type"] = record_type
    try:
        return SimulationConfig.from_dict(d)
    except QrspecError as exc:
        raise click.BadParameter(str(exc), param_hint="--config/--duration-s") from None


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _common(f):
    f = click.option("--record-type", type=click.Choice(RECORD_TYPES), default=None,
                     help="PTU record type (default HydraHarp2T3; T2: GenericT2, "
                          "HydraHarp2T2).")(f)
    f = click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Random seed (same seed, same photons).")(f)
    f = click.option("--duration-s", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Acquisition time in s (default: the preset's, 10 s).")(f)
    f = click.option("--preset", "preset_name", type=click.Choice(PRESET_NAMES),
                     default="undoped", show_default=True, help="Particle type.")(f)
    f = click.option("--overwrite", is_flag=True, help="Replace existing output files.")(f)
    return f


@click.command("simulate")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@_common
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              default=None,
              help="JSON SimulationConfig (full or partial, merged onto the preset).")
@click.option("--no-sidecar", is_flag=True, help="Do not write OUT.truth.npz.")
def simulate(out, preset_name, duration_s, seed, record_type, overwrite, config_path,
             no_sidecar):
    """Simulate one quantum rod and write OUT (PTU) plus OUT.truth.npz (ground truth).

    Prints one line: the file, the number of photons, the mean rate and the seed.
    """
    from qrspec.simulate import sidecar_path, simulate_particle, write_particle

    cfg = _build_config(preset_name, config_path, duration_s, record_type)
    targets = [out] + ([] if no_sidecar else [sidecar_path(out)])
    existing = [str(p) for p in targets if p.exists()]
    if existing and not overwrite:
        raise click.ClickException(f"{', '.join(existing)} exists; use --overwrite")
    sim = simulate_particle(cfg, seed)
    write_particle(sim, out, sidecar=not no_sidecar)
    rate = sim.photons.size / cfg.duration_s
    click.echo(f"{out}\t{sim.photons.size} photons\t{rate:.0f} cps\tseed={seed}")


@click.command("simulate-batch")
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--n-particles", type=click.IntRange(min=1), required=True,
              help="Number of particles.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@_common
@click.pass_context
def simulate_batch(ctx, outdir, n_particles, no_progress, preset_name, duration_s, seed,
                   record_type, overwrite):
    """Simulate a population of rods with particle-to-particle spread into OUTDIR.

    Writes particle_0000.ptu (+ .truth.npz), ... and population.json (per-particle seed and
    config). Prints one line per particle; a progress bar on a terminal (stderr; not with -q
    or --no-progress).
    """
    from qrspec.app.progress import ProgressBar, progress_enabled
    from qrspec.simulate import population_configs, simulate_particle, write_particle

    base = _build_config(preset_name, None, duration_s, record_type)
    outdir.mkdir(parents=True, exist_ok=True)
    manifest = outdir / "population.json"
    if manifest.exists() and not overwrite:
        raise click.ClickException(f"{manifest} exists; use --overwrite")
    rows = []
    quiet = bool(ctx.find_root().params.get("quiet"))
    # a bar when the lines go elsewhere (stdout redirected); on one terminal the lines show it
    show = progress_enabled(quiet, no_progress) and not _isatty(sys.stdout)
    with ProgressBar(n_particles, "simulated", enabled=show) as bar:
        for i, (cfg, s) in enumerate(population_configs(base, n_particles, seed)):
            path = outdir / f"particle_{i:04d}.ptu"
            sim = simulate_particle(cfg, s)
            write_particle(sim, path)
            rows.append({"file": path.name, "seed": s, "n_photons": sim.photons.size,
                         "config": cfg.to_dict()})
            click.echo(f"{path}\t{sim.photons.size} photons\tseed={s}")
            bar(path.name, "ok")
    manifest.write_text(json.dumps({"base_seed": seed, "preset": preset_name,
                                    "particles": rows}, indent=1))
