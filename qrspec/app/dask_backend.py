"""Run ``qrspec batch`` on a dask.distributed cluster (extra ``dask``).

The same per-particle task as the local process pool runs on the cluster's workers through
``Client.get_executor()`` (a :class:`concurrent.futures.Executor`). Workers return each
particle's :class:`~qrspec.analysis.particle.ParticleAnalysis` to the client, and the client alone
writes the checkpoint files and the results file, so workers need no access to the output folder
(only to the input files) and the outputs and resume semantics are those of the local pool.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

__all__ = ["dask_executor"]

logger = logging.getLogger(__name__)


@contextmanager
def dask_executor(scheduler: str | None = None, local_workers: int | None = None):
    """A concurrent.futures executor backed by a dask.distributed client.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``).
    local_workers : int, optional
        Start a LocalCluster on loopback with this many single-threaded worker processes
        instead.

    Yields
    ------
    concurrent.futures.Executor
    """
    from qrspec.errors import QrspecError

    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise QrspecError("the dask backend needs dask.distributed: pip install "
                          "'qrspec[dask]'") from None
    if (scheduler is None) == (local_workers is None):
        raise ValueError("give exactly one of scheduler= and local_workers=")
    cluster = None
    if scheduler is None:
        if not (isinstance(local_workers, int) and local_workers >= 1):
            raise ValueError(f"local_workers={local_workers!r} must be a positive integer")
        cluster = LocalCluster(n_workers=local_workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout=30)
        except OSError as exc:
            raise QrspecError(f"cannot connect to dask scheduler={scheduler!r}: {exc}") from None
    try:
        yield client.get_executor(pure=False)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
