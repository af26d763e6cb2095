"""Rendering many models at once: the models a load must render, spread over forked workers.

Input: a function that parses one work item and the list of items (those whose last element is
None need rendering; the others were taken from the cache) -> output: the results in the same
order. Jinja's compiles are CPU-bound, so from ``PARALLEL_PARSE_MIN`` models on the items are
rendered on every core by forked workers, which inherit the environment with its compiled
macros; results come back pickled (signals are the run's: a worker ignores Ctrl-C and dies at
the pool's SIGTERM). Where fork is unavailable, or for small projects, everything runs
in-process. Used by ``parser`` only.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

PARALLEL_PARSE_MIN = 300  # below this, forking costs more than it saves


def map_models(fn: Any, work: list[Any]) -> list[Any]:
    """Render models on every core when many need rendering (Jinja compiles are CPU-bound).

    Workers are forked, so they inherit the environment with its compiled macros; results
    come back pickled. Where fork is unavailable, or for small projects, render in-process.
    """
    todo = [i for i, item in enumerate(work) if item[-1] is None]
    cores = os.cpu_count() or 1
    if len(todo) < PARALLEL_PARSE_MIN or cores < 2:
        return [fn(item) for item in work]
    import multiprocessing

    try:
        ctx = multiprocessing.get_context("fork")
    except ValueError:
        return [fn(item) for item in work]
    global _FORK_WORK
    _FORK_WORK = (fn, work)
    chunks = [todo[i::cores] for i in range(cores)]
    try:
        before = _hold_signals()  # a worker takes its own before any can reach it
        try:
            pool = ctx.Pool(processes=cores, initializer=_worker_signals)
        except BaseException:
            _restore(before)
            raise
        with pool:
            _restore(before)  # one held meanwhile comes now, and the pool is ended on the way out
            # the workers are forked by now: use the wait to import what the next stages need
            warm = threading.Thread(target=_warm_imports, daemon=True)
            warm.start()
            parts = pool.map(_parse_chunk, chunks)
            warm.join()
    finally:
        _FORK_WORK = None
    results: list[Any] = [None] * len(work)
    for chunk, part in zip(chunks, parts, strict=True):
        for index, result in zip(chunk, part, strict=True):
            results[index] = result
    for i, item in enumerate(work):
        if results[i] is None:
            results[i] = fn(item)
    return results


_FORK_WORK: tuple[Any, list[Any]] | None = None


_HELD = {signal.SIGINT, signal.SIGTERM}


def _hold_signals() -> set[int] | None:
    """Block SIGINT and SIGTERM in this thread while the pool forks its workers (and starts its
    threads, which keep them blocked: signals stay the main thread's); the mask before, or None
    where masks are not available."""
    if not hasattr(signal, "pthread_sigmask"):
        return None
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, _HELD))


def _restore(before: set[int] | None) -> None:
    if before is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _worker_signals() -> None:
    """A worker leaves signals to the run: Ctrl-C (sent to the whole process group) is the
    run's to handle, and the SIGTERM with which the pool ends its workers ends them at once.
    Inherited, cadence's handlers could hold a worker back while the pool waited for it: a
    cold load of 1,000 models hung about once in 40 (the worker blocked on the task queue's
    lock the pool holds as it ends, alive after its SIGTERM)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD)


def _warm_imports() -> None:
    import importlib

    for name in ("networkx", "croniter"):
        try:
            importlib.import_module(name)
        except ImportError:  # pragma: no cover - a dependency is missing; the stage will say so
            pass


def _parse_chunk(indexes: list[int]) -> list[Any]:
    assert _FORK_WORK is not None
    fn, work = _FORK_WORK
    return [fn(work[i]) for i in indexes]
