"""Dask distributed: a local cluster or a connection to one, and the executor the coordinator uses.

Imported only by ``archive`` runs: the core install (``import verifier``, ``verify``) never loads Dask.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from contextlib import contextmanager
from typing import Any

from ..engine import usable_cpus
from ..errors import ClusterError, UsageError

CONNECT_TIMEOUT = "10s"


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise UsageError("archive verify needs Dask: pip install 'xchat-verify[dask]'") from None
    return distributed


@contextmanager
def open_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A client of the cluster at ``scheduler``, or of a new local cluster of ``workers`` processes
    (default: one per core, one thread each: the verification is CPU-bound Python), closed after."""
    distributed = _distributed()
    if scheduler is not None:  # an empty address is an error, not "no scheduler"
        _check_address(scheduler)
        try:
            client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            raise ClusterError(f"cannot connect to the Dask scheduler at {scheduler}: {exc}") from None
        with _quiet(), client:
            yield client
        return
    count = workers or usable_cpus()  # one worker process per CPU this process may use
    import dask
    with dask.config.set(LOCAL_CONFIG):  # the workers' nannies take the configuration as it is now
        # the scheduler's HTTP pages (/info, /json: workers, tasks, their logs) on this host only: ":0"
        # served them on every interface (round 92)
        cluster = distributed.LocalCluster(n_workers=count, threads_per_worker=1, processes=True, host="127.0.0.1",
                                           dashboard_address="127.0.0.1:0", silence_logs=logging.CRITICAL)
    with cluster, distributed.Client(cluster, set_as_default=False) as client:
        yield client


def _quiet() -> Any:
    """Dask's own log lines (a lost scheduler logs a traceback) not shown while a run uses a remote
    client, as the local cluster's ``silence_logs``: our one line says what failed."""
    from distributed.utils import silence_logging_cmgr
    return silence_logging_cmgr(logging.CRITICAL)


# No dashboard is served, so the workers' statistical profiler (a stack sample every 10 ms) would
# only cost CPU in what is CPU-bound Python.
LOCAL_CONFIG = {"distributed.worker.profile.enabled": False}


def _check_address(address: str) -> None:
    """A malformed or unusable address is a usage error before any Client exists (a half-made one
    hangs at exit and prints a traceback from its ``__del__``): a scheme Dask lacks (``udp``), one
    whose transport is not installed (``ucx``), ``inproc`` (in-process only), a port out of range,
    ``tls://`` without TLS configured in Dask's configuration."""
    from distributed.comm import registry
    from distributed.comm.addressing import parse_address, parse_host_port
    try:
        scheme, location = parse_address(address if "://" in address else f"tcp://{address}")
        if scheme in ("tcp", "tls", "ws", "wss"):
            _host, port = parse_host_port(location)
            if not 0 < int(port) < 65536:
                raise ValueError(f"port {port} is out of range")
        if scheme == "inproc":
            raise ValueError("an in-process address names no scheduler another process can reach")
        backend: Any = registry.get_backend(scheme)  # ValueError: a scheme Dask does not know
        try:
            backend.get_connector()
        except (TypeError, ImportError, NotImplementedError):
            raise ValueError(f"the {scheme} transport is not installed") from None
        if scheme == "tls":
            from distributed import security
            settings: Any = security.Security  # untyped in distributed: called through Any
            if settings().get_connection_args("client").get("ssl_context") is None:
                raise ValueError("tls:// needs TLS configured for Dask (distributed.comm.tls.* in its configuration)")
    except (ValueError, TypeError, ImportError) as exc:
        raise UsageError(f"--scheduler {address}: {exc}") from None


def idle_scheduler(client: Any) -> bool:
    """Whether the cluster says it has no worker now (a remote scheduler started without any: the
    run then waits, silently, until one joins; round 92). A cluster that cannot say is not idle."""
    try:
        return not client.nthreads()
    except Exception:  # noqa: BLE001 - a cluster that cannot say: nothing to warn of
        return False


def worker_count(client: Any) -> int:
    """Worker threads the cluster has now (at least one, so planning always works)."""
    try:
        return max(1, int(sum(client.nthreads().values())))
    except Exception:  # a cluster that cannot say: plan for one
        return 1


class DaskExecutor:
    """The coordinator's tasks as Dask futures. A worker that dies takes its results with it; Dask
    recomputes them from their inputs elsewhere (every task is a pure function of its arguments)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def share(self, value: Any) -> Any:
        """One task whose result is ``value``: each worker fetches it once, and if every worker
        holding it dies, Dask recomputes it (scattered data would be lost for good)."""
        return self.client.submit(_same, value, pure=False)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.client.submit(fn, *args, pure=False)

    def as_completed(self) -> "_Completed":
        return _Completed(_distributed(), self.client)


class _Completed:
    """Futures as they finish; a task whose workers kept dying is a ``ClusterError``."""

    def __init__(self, distributed: Any, client: Any) -> None:
        self.distributed = distributed
        self.futures = distributed.as_completed([], loop=client.loop)

    def add(self, future: Any) -> None:
        self.futures.add(future)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        for future in self.futures:
            try:
                result = future.result()
            except self.distributed.KilledWorker as exc:
                raise ClusterError(f"the cluster lost the workers running a task too often: {exc}") from None
            except CancelledError as exc:  # round 92: an internal error, after Dask's traceback on stderr
                raise ClusterError(f"the cluster cancelled a task (the scheduler was lost or restarted): "
                                   f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
            yield future, result


def _same(value: Any) -> Any:
    return value
