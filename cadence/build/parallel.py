"""Parallel builds: the decisions of one run, built on N threads in dependency order.

Input: the decisions to build, which of them each must wait for, a thread count, the run's engine
and callbacks (a task: build the decision it is given on a cursor of its own, and on an engine
that groups commits the ready ones it takes after it, ``grouped.task``, or that one alone,
``one``; record a result). Output: nothing; `done` has been called, in the calling thread, for
every build that committed.
Invariants: a model starts only after every model it waits for is done (committed); ready models
start in plan order; a task takes more only of what was ready when it was submitted (its
transaction, begun after, sees those and not what commits later); no two tasks run on one cursor
at once, and at most ``threads`` cursors are opened, each reused by task after task (a cursor's
first statement costs more than the next ones) and closed at the end; the engine's thread pool
is sized to the tasks running and about to run, before they start and again as they end
(``Engine.share_threads``), and given back whole at the end; an interrupt (Ctrl-C,
SIGTERM) stops tasks taking more, interrupts every running one until it returns, then records
the builds that committed before it reached them, then propagates.
"""

from __future__ import annotations

import contextlib
import heapq
import queue
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from cadence.engines.base import Engine
from cadence.plan.dag import Dag
from cadence.plan.due import Decision

R = TypeVar("R")
# a task on one cursor: (cursor, the decision given, take more, results once final) -> None
Work = Callable[[Engine, Decision, Callable[[], "Decision | None"], list[tuple[Decision, R]]], None]


def dependencies(dag: Dag, building: set[str]) -> dict[str, set[str]]:
    """For each model built in this run, the models built in this run that it must wait for
    (looking through models not rebuilt, such as views and ephemerals)."""
    deps: dict[str, set[str]] = {}
    for name in building:
        found: set[str] = set()
        stack = list(dag.parents.get(name, ()))
        seen: set[str] = set()
        while stack:
            p = stack.pop()
            if p in seen:
                continue
            seen.add(p)
            if p in building:
                found.add(p)
            else:
                stack.extend(dag.parents.get(p, ()))
        deps[name] = found
    return deps


def run(
    building: list[Decision],
    deps: dict[str, set[str]],
    threads: int,
    engine: Engine,
    work: Work[R],
    done: Callable[[Decision, R], None],
    started: Callable[[Decision, int], None],
) -> None:
    """Build independent models at the same time, each task on a cursor of its own: ``work``
    builds the decision it is given and any more it takes (``take``: the next ready one, or
    None), and appends each result to ``results`` once it is final (committed)."""
    index = {d.name: i for i, d in enumerate(building)}
    waiting = {d.name: len(deps[d.name]) for d in building}
    dependents: dict[str, list[str]] = {d.name: [] for d in building}
    for d in building:
        for dep in deps[d.name]:
            dependents[dep].append(d.name)
    ready = [index[n] for n, count in waiting.items() if count == 0]  # a heap: plan order first
    heapq.heapify(ready)
    lock = threading.Lock()  # ready is popped by tasks too
    stopping = threading.Event()
    taken: queue.SimpleQueue[Decision] = queue.SimpleQueue()  # by tasks: their start events
    running: dict[Future[None], tuple[Engine, list[tuple[Decision, R]]]] = {}
    idle: list[Engine] = []  # cursors no build runs on, reused before a new one is opened
    opened: list[Engine] = []
    count = 0

    def pop() -> Decision | None:
        with lock:
            return building[heapq.heappop(ready)] if ready else None

    # how many tasks have finished, and, per decision made ready, the count its last wait
    # finished at: a task's transaction, begun after it was submitted, sees what had finished
    # by then and nothing later, so it takes more only of what was ready by then
    finished_tasks = [0]
    ready_since: dict[str, int] = {}

    def taker(since: int) -> Callable[[], Decision | None]:
        def take() -> Decision | None:
            if stopping.is_set():
                return None
            with lock:
                if not ready or ready_since.get(building[ready[0]].name, 0) > since:
                    return None
                decision = building[heapq.heappop(ready)]
            taken.put(decision)
            return decision

        return take

    def finish(results: list[tuple[Decision, R]]) -> None:
        finished_tasks[0] += 1
        for decision, result in results:
            done(decision, result)
            with lock:
                for child in dependents[decision.name]:
                    waiting[child] -= 1
                    if waiting[child] == 0:
                        ready_since[child] = finished_tasks[0]
                        heapq.heappush(ready, index[child])

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="cadence-build") as pool:
        try:
            while ready or running:
                starting: list[Decision] = []
                while len(running) + len(starting) < threads and (decision := pop()) is not None:
                    starting.append(decision)
                # the pool sized before their statements start, and grown again as builds end
                # (a long build left alone gets the rest for its later pipelines)
                engine.share_threads(len(running) + len(starting))
                for decision in starting:
                    count += 1
                    started(decision, count)
                    if not idle:
                        opened.append(engine.cursor())
                        idle.append(opened[-1])
                    cursor = idle.pop()
                    results: list[tuple[Decision, R]] = []
                    take = taker(finished_tasks[0])
                    running[pool.submit(work, cursor, decision, take, results)] = (cursor, results)
                finished, _ = wait(list(running), timeout=0.25, return_when=FIRST_COMPLETED)
                while not taken.empty():
                    count += 1
                    started(taken.get(), count)
                for future in finished:
                    cursor, results = running.pop(future)
                    idle.append(cursor)
                    future.result()
                    finish(results)
        except KeyboardInterrupt:
            stopping.set()
            _interrupt_until_stopped(running)
            for _cursor, results in running.values():
                finish(results)  # what committed before the interrupt reached it
            raise
        finally:
            pool.shutdown(wait=True)  # no build still runs on a cursor closed here
            for cursor in opened:
                with contextlib.suppress(Exception):  # closing must not mask what is raised
                    cursor.close()
            with contextlib.suppress(Exception):  # the whole pool again, for what follows
                engine.share_threads(0)


def one(build: Callable[[Decision, Engine], R]) -> Work[R]:
    """The task of an engine that commits each publish on its own: the one decision given."""

    def work(
        cursor: Engine, first: Decision, take: Callable[[], Decision | None], results: list
    ) -> None:
        results.append((first, build(first, cursor)))

    return work


def _interrupt_until_stopped(running: dict[Future[None], tuple[Engine, list]]) -> None:
    """Interrupt every running build until it returns. An interrupt that reaches a cursor between
    two statements is lost, and the next statement (perhaps a long query) would run to its end."""
    pending = set(running)
    while pending:
        for future in pending:
            with contextlib.suppress(Exception):  # a cursor its build has already closed
                running[future][0].interrupt()
        pending = wait(pending, timeout=0.1).not_done
