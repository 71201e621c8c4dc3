"""Run tasks on all the cores, in forked worker processes, two per core: reads are
synchronous, so while one worker waits for the disk the other computes. Each worker makes
its own resources once (decode.stream's bounded readers), so a bound on memory holds per
worker. Nothing here knows what a task is: stats, diff and verify stream tensors through it."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any, Callable, Sequence

from ..core.errors import AnatomyError


def workers() -> int:
    """Two per core (on 2 cores, 4 workers took 13.2 s for Llama-2-7B where 2 took 16 s)."""
    return 2 * (os.cpu_count() or 1)


# In a forked worker only, never in the calling process: the job (tasks, work, resources)
# its initializer received, inherited through fork rather than pickled (so only task indices
# go to the workers and results come back, and `work` may be any function), and the
# resources the worker made for its first task.
_job: tuple | None = None
_own: tuple = ()


def _worker_start(parent: int, job: tuple) -> None:
    """In each forked worker, first: die with the parent, and leave signals to it."""
    import signal

    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the death signal was asked for
        os._exit(1)
    global _job, _own
    _job, _own = job, tuple(job[2](True))
    # Ctrl-C reaches the whole process group: the parent ends the workers; a plain SIGTERM ends one.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _run_one(index: int) -> tuple[int, object]:
    tasks, work, _ = _job  # type: ignore[misc]
    return index, work(tasks[index], *_own)


def _stop_workers(pool: Any) -> None:
    """End the workers at once (an interrupt, an error): never wait for their current tensors."""
    import multiprocessing

    for process in multiprocessing.active_children():
        process.kill()
    pool.shutdown(wait=True, cancel_futures=True)


def run_parallel(
    tasks: Sequence[Any],
    work: Callable[..., Any],
    weight: Callable[[Any], int],
    resources: Callable[[bool], Sequence[Any]] = lambda in_worker: (),
    done: Callable[[Any], None] | None = None,
) -> list:
    """work(task, *resources) for every task on all cores, largest first (so the last ones to
    finish are small and the cores stay busy); results in the order of `tasks`; done(task)
    in this process as each one finishes. resources(in_worker) makes one worker's own
    (each with a close()); in_worker is False where fork is missing and tasks run here.

    Workers are forked processes: on this project's 2-core machine they beat threads by 19%
    (numpy's bincount, then, and the per-block Python hold the GIL; bench/RESULTS.md).
    Results must pickle."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    order = sorted(range(len(tasks)), key=lambda i: -weight(tasks[i]))
    results: list = [None] * len(tasks)
    count = min(workers(), len(tasks))
    try:
        if count > 1 and "fork" in multiprocessing.get_all_start_methods():
            # concurrent.futures, not multiprocessing.Pool: when a worker is killed (say, by
            # the out-of-memory killer) Pool waits forever, this raises BrokenProcessPool.
            job = (tasks, work, resources)
            pool = ProcessPoolExecutor(
                count,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_worker_start,
                initargs=(os.getpid(), job),
            )
            try:
                for future in as_completed([pool.submit(_run_one, i) for i in order]):
                    index, result = future.result()
                    results[index] = result
                    if done is not None:
                        done(tasks[index])
            except BaseException:
                _stop_workers(pool)
                raise
            pool.shutdown()
        else:
            own = tuple(resources(False))
            try:
                for index in order:
                    results[index] = work(tasks[index], *own)
                    if done is not None:
                        done(tasks[index])
            finally:
                for resource in own:
                    resource.close()
    except BrokenProcessPool:
        raise AnatomyError(
            "a worker process",
            "to finish its tensors",
            "it was killed (perhaps for lack of memory, or a weights file was truncated while it was read)",
            "run again, or read fewer tensors at once with --filter",
        ) from None
    return results
