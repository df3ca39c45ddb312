"""The dask.distributed backend gives the same results as the local process pool."""

from __future__ import annotations

import numpy as np
import pytest

from qrspec.app.batch import run_batch
from qrspec.store.hdf5 import read_results

pytest.importorskip("distributed")

COLUMNS = ("particle_id", "group", "status", "error", "n_photons", "g2_zero", "g2_zero_gated",
           "tau_x_neutral_ns", "tau_xx_neutral_ns", "n_c_mean", "tau_a_xx_charged_ns")


@pytest.fixture(scope="module")
def small_population(tmp_path_factory):
    from qrspec.simulate import preset, simulate_particle
    from qrspec.simulate.sidecar import write_particle

    root = tmp_path_factory.mktemp("daskpop")
    for i, name in enumerate(("neutral", "undoped", "mn-doped")):
        sim = simulate_particle(preset(name, duration_s=3.0), seed=40 + i)
        write_particle(sim, root / f"{name}.ptu", sidecar=False)
    (root / "broken.ptu").write_bytes(b"PQTTTR\0\0" + b"\0" * 40)
    return root


def test_local_cluster_equals_process_pool(small_population, tmp_path):
    from qrspec.app.dask_backend import dask_executor

    local = run_batch([small_population], tmp_path / "local.h5", jobs=2)
    with dask_executor(local_workers=2) as ex:
        dask = run_batch([small_population], tmp_path / "dask.h5", executor=ex)
    assert (local.n_ok, local.n_failed) == (dask.n_ok, dask.n_failed) == (3, 1)
    a, b = read_results(local.output).summary, read_results(dask.output).summary
    for col in COLUMNS:
        x, y = a[col], b[col]
        if x.dtype.kind == "f":
            assert np.array_equal(x, y, equal_nan=True), col
        else:
            assert list(x) == list(y), col
    # the client wrote every particle's arrays too
    res = read_results(dask.output)
    ok = [r["particle_id"] for r in res.summary if r["status"] == "ok"]
    assert all(res.particle(pid).trajectory.counts.sum() > 0 for pid in ok)


def test_dask_executor_arguments():
    from qrspec.app.dask_backend import dask_executor

    with pytest.raises(ValueError, match=r"give exactly one of scheduler= and local_workers="):
        with dask_executor():
            pass
    with pytest.raises(ValueError, match=r"local_workers=0 must be a positive integer"):
        with dask_executor(local_workers=0):
            pass


def test_cli_dask_local(small_population, tmp_path):
    from click.testing import CliRunner

    from qrspec.cli import main

    out = tmp_path / "cli.h5"
    r = CliRunner().invoke(main, ["batch", str(small_population), "-o", str(out),
                                  "--dask-local", "1", "--no-progress"])
    assert r.exit_code == 3, r.output  # the broken file fails, the batch completes
    assert len(read_results(out).summary) == 4
    r = CliRunner().invoke(main, ["batch", str(small_population), "-o", str(out),
                                  "--dask-local", "1", "--scheduler", "tcp://127.0.0.1:1"])
    assert r.exit_code == 2 and "mutually exclusive" in r.output
