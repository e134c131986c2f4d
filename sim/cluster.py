"""The Dask cluster that sparq's sweeps and regressions run on: a ``LocalCluster`` by default, any Dask scheduler by
address.

::

    from sparq.sim.cluster import dask_client
    with dask_client(address=None, n_workers=2) as client:      # address="tcp://host:8786" for a running cluster
        futures = [client.submit(work, item, pure=False) for item in items]

A local cluster has ``n_workers`` single-threaded worker processes (a Verilator build or a place-and-route takes one
core) and its dashboard on a free port (``client.dashboard_link``); it is started and closed by the ``with``. A
remote scheduler's workers must see the same files as this process (a shared file system) and have sparq installed.
"""

from contextlib import contextmanager

__all__ = ["dask_client"]


@contextmanager
def dask_client(address: str | None = None, *, n_workers: int = 2):
    """A ``dask.distributed.Client`` for the scheduler at ``address``, or for a ``LocalCluster`` of ``n_workers``
    single-threaded processes started here; closed (and the local cluster stopped) on exit."""
    from dask.distributed import Client, LocalCluster

    if address is None:
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0")
        client = Client(cluster)
    else:
        cluster, client = None, Client(address)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
