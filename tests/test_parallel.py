"""Parallel builds (cadence/parallel.py): dependency order, cursors reused and closed, and
interrupts that reach every build."""

from __future__ import annotations

import threading
import time

import pytest

from cadence.build import parallel
from cadence.plan.dag import Dag
from cadence.plan.due import BUILD, Decision


class Cursor:
    """Counts the interrupts it gets; ``close`` as an engine's cursor has it."""

    def __init__(self) -> None:
        self.interrupts = 0
        self.changed = threading.Event()
        self.closed = False

    def interrupt(self) -> None:
        self.interrupts += 1
        self.changed.set()

    def close(self) -> None:
        self.closed = True


class Engine:
    def __init__(self) -> None:
        self.cursors: list[Cursor] = []
        self.shared: list[int] = []  # share_threads, in order

    def cursor(self) -> Cursor:
        self.cursors.append(Cursor())
        return self.cursors[-1]

    def share_threads(self, builds: int) -> None:
        self.shared.append(builds)


def decision(name: str) -> Decision:
    return Decision(name, "model", BUILD, "due")


def test_dependencies_look_through_models_not_built() -> None:
    parents = {"seg": ("view",), "view": ("base",), "base": ()}
    dag = Dag(("base", "view", "seg"), parents, {}, dict.fromkeys(parents, "model"))
    assert parallel.dependencies(dag, {"seg", "base"}) == {"seg": {"base"}, "base": set()}


def test_a_model_starts_only_after_what_it_waits_for() -> None:
    order: list[str] = []
    building = [decision(n) for n in ("a", "b", "c", "d")]
    deps = {"a": set(), "b": {"a"}, "c": {"a"}, "d": {"b", "c"}}
    parallel.run(building, deps, 3, Engine(), parallel.one(lambda d, _c: d.name),
                 lambda d, result: order.append(result), lambda d, n: None)
    assert order[0] == "a" and order[-1] == "d" and sorted(order[1:3]) == ["b", "c"]


def test_an_interrupt_lost_between_statements_is_repeated_until_the_build_returns() -> None:
    """The first interrupt reaches the slow build's cursor before its next statement starts (it
    is lost there); the build only stops at a second one. A single interrupt would leave it
    running to its end."""
    engine = Engine()
    seen: dict[str, int] = {}

    def build(d: Decision, cursor: Cursor) -> str:  # type: ignore[override]
        if d.name == "fast":
            return "fast"
        while cursor.interrupts < 2:  # bounded: gives up (and fails the test) after 10 s
            cursor.changed.clear()
            if not cursor.changed.wait(10):
                break
        seen[d.name] = cursor.interrupts
        raise RuntimeError("interrupted")

    def done(d: Decision, _result: str) -> None:
        raise KeyboardInterrupt  # Ctrl-C arrives while "slow" runs

    with pytest.raises(KeyboardInterrupt):
        parallel.run([decision("slow"), decision("fast")], {"slow": set(), "fast": set()}, 2,
                     engine, parallel.one(build), done, lambda d, n: None)  # type: ignore[arg-type]
    assert seen["slow"] >= 2


def test_builds_reuse_at_most_threads_cursors_never_two_at_once_all_closed_at_the_end() -> None:
    """A cursor's first statement costs more than the next: 8 builds on 2 threads open 2
    cursors, not 8, and each is closed once the builds are over."""
    engine = Engine()
    busy: set[int] = set()
    clashes: list[str] = []
    lock = threading.Lock()

    def build(d: Decision, cursor: Cursor) -> str:  # type: ignore[override]
        with lock:
            if id(cursor) in busy:
                clashes.append(d.name)
            busy.add(id(cursor))
        time.sleep(0.01)
        assert not cursor.closed
        with lock:
            busy.discard(id(cursor))
        return d.name

    names = [f"m{i}" for i in range(8)]
    built: list[str] = []
    parallel.run([decision(n) for n in names], {n: set() for n in names}, 2, engine,
                 parallel.one(build),
                 lambda d, result: built.append(result), lambda d, n: None)  # type: ignore[arg-type]
    assert sorted(built) == names
    assert clashes == []
    assert 1 <= len(engine.cursors) <= 2
    assert all(c.closed for c in engine.cursors)


def test_a_task_takes_more_only_of_what_was_ready_when_it_was_submitted() -> None:
    """A task's transaction (a commit group) sees what had committed when it began: a model
    made ready by another task finishing after that must go to a new task, never to one that
    is still running. Here "slow" asks for more only once "fast" is done and its child ready."""
    fast_done, asked = threading.Event(), threading.Event()
    firsts: list[str] = []
    took: list[str | None] = []

    def work(cursor, first, take, results) -> None:  # type: ignore[no-untyped-def]
        firsts.append(first.name)
        if first.name == "blocker":
            assert asked.wait(10)  # busy until "slow" has asked for more
        if first.name == "slow":
            assert fast_done.wait(10)
            time.sleep(0.05)  # the child is pushed right after fast's done
            took.append(getattr(take(), "name", None))
            asked.set()
        results.append((first, first.name))

    def done(d: Decision, result: str) -> None:
        if result == "fast":
            fast_done.set()

    # two threads: "blocker" takes the slot "fast" frees, so "child" waits in the ready queue
    # while "slow" still runs
    parallel.run([decision(n) for n in ("slow", "fast", "blocker", "child")],
                 {"slow": set(), "fast": set(), "blocker": set(), "child": {"fast"}}, 2,
                 Engine(), work, done, lambda d, n: None)
    assert took == [None]
    assert sorted(firsts) == ["blocker", "child", "fast", "slow"]


def test_the_pool_is_sized_to_the_builds_before_they_start_and_given_back_at_the_end() -> None:
    engine = Engine()
    seen: list[tuple[str, int]] = []  # (model, the last size asked for as it started)

    together = threading.Barrier(3)

    def build(d: Decision, _cursor: Cursor) -> str:
        seen.append((d.name, engine.shared[-1]))
        if d.name != "root":
            together.wait(timeout=10)  # none ends before all three have started
        return d.name

    building = [decision(n) for n in ("root", "b", "c", "d")]
    deps = {"root": set(), "b": {"root"}, "c": {"root"}, "d": {"root"}}
    parallel.run(building, deps, 4, engine, parallel.one(build), lambda d, r: None,
                 lambda d, n: None)  # type: ignore[arg-type]
    assert seen[0] == ("root", 1)  # alone
    assert sorted(seen[1:]) == [("b", 3), ("c", 3), ("d", 3)]  # three at once, sized first
    assert engine.shared[-1] == 0  # the whole pool again for what follows the builds


def test_a_build_left_running_alone_gets_the_pool_back() -> None:
    engine = Engine()
    grown = threading.Event()

    def build(d: Decision, _cursor: Cursor) -> str:
        if d.name == "long":
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and engine.shared[-1] != 1:
                time.sleep(0.01)  # the three short ones end meanwhile
            if engine.shared[-1] == 1:
                grown.set()
        return d.name

    names = ("long", "a", "b", "c")
    parallel.run([decision(n) for n in names], {n: set() for n in names}, 4, engine,
                 parallel.one(build), lambda d, r: None, lambda d, n: None)  # type: ignore[arg-type]
    assert engine.shared[0] == 4 and grown.is_set()
