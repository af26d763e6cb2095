"""Parallel builds: the decisions of one run, built on N threads in dependency order.

Input: the decisions to build, which of them each must wait for, a thread count, the run's engine
and two callbacks (build one decision on a cursor of its own; record its result). Output: nothing;
`done` has been called, in the calling thread, for every build that returned.
Invariants: a model starts only after every model it waits for is done; ready models start in plan
order; no two builds run on one cursor at once, and at most ``threads`` cursors are opened, each
reused by build after build (a cursor's first statement costs more than the next ones) and closed
at the end; an interrupt (Ctrl-C, SIGTERM) interrupts every running build until it returns, then
records the builds that committed before it reached them, then propagates.
"""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from cadence.engines.base import Engine
from cadence.plan.dag import Dag
from cadence.plan.due import Decision

R = TypeVar("R")


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
    build: Callable[[Decision, Engine], R],
    done: Callable[[Decision, R], None],
    started: Callable[[Decision, int], None],
) -> None:
    """Build independent models at the same time, each on its own cursor and transaction."""
    index = {d.name: i for i, d in enumerate(building)}
    waiting = {d.name: len(deps[d.name]) for d in building}
    dependents: dict[str, list[str]] = {d.name: [] for d in building}
    for d in building:
        for dep in deps[d.name]:
            dependents[dep].append(d.name)
    ready = [index[n] for n, count in waiting.items() if count == 0]  # a heap: plan order first
    heapq.heapify(ready)
    running: dict[Future[R], tuple[Decision, Engine]] = {}
    idle: list[Engine] = []  # cursors no build runs on, reused before a new one is opened
    opened: list[Engine] = []
    count = 0

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="cadence-build") as pool:
        try:
            while ready or running:
                while ready and len(running) < threads:
                    decision = building[heapq.heappop(ready)]
                    count += 1
                    started(decision, count)
                    if not idle:
                        opened.append(engine.cursor())
                        idle.append(opened[-1])
                    cursor = idle.pop()
                    running[pool.submit(build, decision, cursor)] = (decision, cursor)
                finished, _ = wait(list(running), timeout=0.25, return_when=FIRST_COMPLETED)
                for future in finished:
                    decision, cursor = running.pop(future)
                    idle.append(cursor)
                    done(decision, future.result())
                    for child in dependents[decision.name]:
                        waiting[child] -= 1
                        if waiting[child] == 0:
                            heapq.heappush(ready, index[child])
        except KeyboardInterrupt:
            _interrupt_until_stopped(running)
            for future, (decision, _cursor) in list(running.items()):
                try:
                    result = future.result()
                except BaseException:  # noqa: BLE001 - the interrupt is what is reported
                    continue
                done(decision, result)  # it committed before the interrupt reached it
            raise
        finally:
            pool.shutdown(wait=True)  # no build still runs on a cursor closed here
            for cursor in opened:
                with contextlib.suppress(Exception):  # closing must not mask what is raised
                    cursor.close()


def _interrupt_until_stopped(running: dict[Future[R], tuple[Decision, Engine]]) -> None:
    """Interrupt every running build until it returns. An interrupt that reaches a cursor between
    two statements is lost, and the next statement (perhaps a long query) would run to its end."""
    pending = set(running)
    while pending:
        for future in pending:
            with contextlib.suppress(Exception):  # a cursor its build has already closed
                running[future][1].interrupt()
        pending = wait(pending, timeout=0.1).not_done
