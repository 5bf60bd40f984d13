"""Where a sweep's or a study's tasks run: a process pool here, or Dask distributed -- one seam.

Why a seam and not two code paths: results must not depend on where they were computed. Every
command builds the same list of small task descriptions (paths, partition keys, parameters) and
calls one module-level task function on each; only *who* calls it differs:

- no ``--scheduler``: a :class:`~concurrent.futures.ProcessPoolExecutor` of ``--workers`` processes
  (what ``mm sweep`` always did);
- ``--scheduler local``: a Dask ``LocalCluster`` of ``--workers`` single-threaded worker processes on
  127.0.0.1 (the laptop form of a cluster: same scheduler, same serialisation, same failure modes);
- ``--scheduler tcp://HOST:8786``: a running Dask cluster.

Results come back in task order whichever runs them, so the aggregation that follows sees the same
list. Dask is imported only when ``--scheduler`` is given: other commands never pay for it.

A cluster runs *our* code on *its* workers, so before any task :func:`open_runner` asks every worker
for a digest of its ``mm_core`` sources and the numeric libraries' versions, and refuses to start if
one differs from the client's: a worker on another version would silently compute other numbers.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

LOCAL = "local"
TRIM_KEY = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


class SchedulerError(RuntimeError):
    """The executor could not be started or reached (one line: what and what to do)."""


class TaskFailed(RuntimeError):
    """A task raised; the message names the task's exception (one line)."""


def code_digest() -> str:
    """Digest of this process's ``mm_core`` sources and numeric library versions (runs on workers)."""
    import numba
    import numpy
    import pyarrow

    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    h.update(f"{sys.version_info[:2]} numpy {numpy.__version__} numba {numba.__version__} "
             f"pyarrow {pyarrow.__version__}".encode())
    return h.hexdigest()[:16]


class _Progress:
    """The pool's bar: done/total, rate and ETA on stderr, only on a terminal (and never with --json)."""

    def __init__(self, label: str, total: int, enabled: bool) -> None:
        from mm_core.progress import TaskBar

        self._bar = TaskBar(label, total, enabled)
        self.enabled = self._bar.enabled

    def step(self) -> None:
        self._bar.step()


def _failure(exc: BaseException) -> TaskFailed:
    text = str(exc).strip().splitlines()
    what = f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
    if isinstance(exc, FileNotFoundError):
        what += (" -- every worker must read the store and cache paths the client names (on a cluster: a shared "
                 "filesystem or mount at the same path; see docs/scaleout.md)")
    return TaskFailed(f"a task failed on a worker: {what}")


class PoolRunner:
    """Today's process pool behind the seam."""

    def __init__(self, workers: int, progress: bool = False) -> None:
        from concurrent.futures import ProcessPoolExecutor

        self.workers = max(1, int(workers))
        self.progress = progress
        self._pool = ProcessPoolExecutor(max_workers=self.workers)

    def describe(self) -> dict[str, Any]:
        return {"executor": "process-pool", "workers": self.workers}

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], label: str = "tasks") -> list[Any]:
        from concurrent.futures import as_completed

        futures = [self._pool.submit(fn, x) for x in items]
        bar = _Progress(label, len(futures), self.progress)
        try:
            for f in as_completed(futures):
                exc = f.exception()
                if exc is not None:
                    raise _failure(exc)
                bar.step()
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        return [f.result() for f in futures]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskRunner:
    """A Dask ``Client`` behind the seam (a LocalCluster it owns, or a cluster it connects to)."""

    def __init__(self, client: Any, cluster: Any = None, progress: bool = False) -> None:
        self.client, self.cluster, self.progress = client, cluster, progress

    def describe(self) -> dict[str, Any]:
        info = self.client.scheduler_info()
        workers = info.get("workers", {})
        return {"executor": "dask", "address": self.client.scheduler.address,
                "local_cluster": self.cluster is not None, "workers": len(workers),
                "threads": int(sum(w.get("nthreads", 0) for w in workers.values()))}

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], label: str = "tasks") -> list[Any]:
        from dask.distributed import as_completed

        if not items:
            return []
        futures = self.client.map(fn, list(items), pure=False)
        bar = _Progress(label, len(futures), self.progress)
        try:
            for f in as_completed(futures):
                if f.status == "error":
                    raise _failure(f.exception())
                if f.status == "cancelled":
                    raise TaskFailed("a task was cancelled (a worker died or the cluster shut down)")
                bar.step()
            return self.client.gather(futures)
        except TaskFailed:
            self.client.cancel(futures)
            raise
        except Exception as exc:  # KilledWorker, a lost scheduler: one line, not a traceback
            self.client.cancel(futures)
            raise _failure(exc) from None

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def _dask_client(scheduler: str, workers: int) -> tuple[Any, Any]:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - a dependency; only a broken install lacks it
        raise SchedulerError(f"--scheduler needs dask[distributed] ({exc}); pip install 'dask[distributed]'") from None
    if scheduler == LOCAL:
        import dask

        if workers < 1:
            raise SchedulerError("--workers must be >= 1")
        # Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536 (memory back to the OS at once);
        # a backtest task allocates and frees day-sized arrays, and paid ~30 % in page faults for it
        with dask.config.set({TRIM_KEY: None}):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None, silence_logs=logging.ERROR)
        try:
            return Client(cluster), cluster
        except BaseException:
            cluster.close()
            raise
    if not scheduler.startswith(("tcp://", "tls://")):
        raise SchedulerError(f"--scheduler {scheduler!r}: expected 'local' or tcp://HOST:PORT")
    try:
        return Client(scheduler, timeout=float(os.environ.get("MM_DASK_CONNECT_TIMEOUT", "10"))), None
    except (OSError, TimeoutError) as exc:
        raise SchedulerError(f"cannot reach the Dask scheduler at {scheduler}: {exc}".splitlines()[0]) from None


def _check_workers(client: Any) -> None:
    mine = code_digest()
    theirs = client.run(code_digest)
    if not theirs:
        raise SchedulerError(f"the Dask cluster at {client.scheduler.address} has no workers")
    odd = {w: d for w, d in theirs.items() if d != mine}
    if odd:
        w, d = next(iter(sorted(odd.items())))
        raise SchedulerError(f"{len(odd)} of {len(theirs)} Dask worker(s) run other mm_core code or library "
                             f"versions than this client (e.g. {w}: {d}, here: {mine}); install the same "
                             "version everywhere")


@contextmanager
def open_runner(scheduler: Optional[str], workers: int, *, progress: bool = False) -> Iterator[Any]:
    """The task runner for ``--scheduler`` (None: the process pool), closed on exit."""
    if scheduler:
        client, cluster = _dask_client(scheduler, workers)
        runner: Any = DaskRunner(client, cluster, progress)
        try:
            _check_workers(client)
        except BaseException:
            runner.close()
            raise
    else:
        if workers < 1:
            raise SchedulerError("--workers must be >= 1")
        runner = PoolRunner(workers, progress)
    try:
        yield runner
    finally:
        runner.close()
