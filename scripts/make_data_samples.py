"""Regenerate the simulated sample files in ``data_samples/`` (PTU + ground-truth sidecar).

Usage: ``PYTHONPATH=. python scripts/make_data_samples.py [OUTDIR]``

Every file is deterministic (fixed seed, fixed header time, fixed zip timestamps), so a rerun
reproduces the same bytes; ``PROVENANCE.tsv`` lists origin, licence, seed and sha256. Each file
stays under ~2 MB.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from qrspec.simulate import preset, sidecar_path, simulate_particle, write_particle

# (file stem, config, seed, description)
SAMPLES = [
    ("sim_undoped_discharging",
     preset("undoped", duration_s=4.0, charge=dict(discharge_rate_hz=0.6)), 101,
     "undoped rod: ~20 charges leaving within seconds (dim -> bright), neutral blinks"),
    ("sim_mn_doped_blinking",
     preset("mn-doped", duration_s=4.0, charge=dict(charged_dwell_s=0.6, neutral_dwell_s=0.25)),
     102, "Mn-doped rod: n = 6 with telegraph blinking to neutral"),
    ("sim_neutral",
     preset("neutral", duration_s=3.0), 103, "never-charged rod (neutral X/XX reference)"),
    ("sim_neutral_t2",
     preset("neutral", duration_s=1.0, record_type="GenericT2"), 104,
     "never-charged rod, T2 records (1 ps tags)"),
]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    rows = ["file\torigin\tlicence\tseed\tpreset\tphotons\tbytes\tsha256\tdescription"]
    for stem, cfg, seed, text in SAMPLES:
        sim = simulate_particle(cfg, seed)
        ptu, side = write_particle(sim, outdir / f"{stem}.ptu", comment=text)
        assert side == sidecar_path(ptu)
        for path in (ptu, side):
            size = path.stat().st_size
            if size > 2_100_000:
                raise SystemExit(f"{path} is {size} bytes (> ~2 MB); shorten its duration")
            rows.append("\t".join([
                path.name, "simulated by scripts/make_data_samples.py (qrspec.simulate)",
                "BSD-3-Clause", str(seed), cfg.name, str(sim.photons.size), str(size),
                sha256(path), text]))
            print(f"{path}  {size / 1e6:.2f} MB  {sim.photons.size} photons")
    (outdir / "PROVENANCE.tsv").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
         / "data_samples")
