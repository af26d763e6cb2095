"""SIGINT and SIGTERM, from cadence's first line to its last: exit 130 with one line on stderr
("interrupted"), never a traceback and never a bare kill (docs/reference/cli.md, exit codes).

Input: the process as the interpreter hands it over -> output: signal handlers, in two phases.
- ``take_over_at_start`` (``cadence.cli`` calls it before importing click, DuckDB or anything
  else that takes time): until a command starts its work nothing is open and nothing written,
  so a signal ends the process at once, whatever Python is doing (an import half done, click
  parsing the arguments).
- ``interrupt_on_signals`` (the command wrapper, as a command starts): a signal raises
  KeyboardInterrupt where the work is, so the build in flight rolls back and is recorded and
  the wrapper says "interrupted" and exits 130 (``serve`` then installs its own: SIGTERM stops
  serving with exit 0).
- ``command_finished`` (the wrapper, once the command has its exit code): a signal in the
  moments before the process exits is noted and changes nothing, and the interpreter forgets
  a KeyboardInterrupt the command handled (else ``python -m`` would end killed by SIGINT).

Invariants: stdlib only (``os``, ``signal``, ``sys``; ``threading`` to send again a signal that
landed during an import), so taking over costs no start-up time; the
handlers are taken over only when cadence is the program (the ``cadence`` script or ``python -m
cadence``), never when another program imports ``cadence.cli``; a signal the parent set to be
ignored (``nohup``, a background job) stays ignored; SIGINT and SIGTERM are unblocked once the
handlers are in place, so a launcher that blocked them while starting cadence has them
delivered now. A signal that arrives before the interpreter runs cadence's first line (its own
start-up, ~20 ms) is beyond any package's reach.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_INTERRUPTED = 130
MESSAGE = "interrupted"

received: list[int] = []  # the signals this command received (non-empty: it was interrupted)
_taken_over: list[bool] = []  # non-empty: cadence is the program and holds the handlers
_commands = [0]  # counts command starts and ends: a signal sent again belongs to one of them


def is_program() -> bool:
    """Whether cadence is the program this process runs: the console script (``__main__`` is
    a file named cadence) or ``python -m cadence``."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None:
        return spec.name == "cadence.__main__"
    script = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv else "")
    return os.path.basename(script).lower().startswith("cadence")


def _exit_now(signum: int, frame: FrameType | None) -> None:
    os.write(2, f"{MESSAGE}\n".encode())
    os._exit(EXIT_INTERRUPTED)  # nothing started yet: nothing to roll back, flush or record


def _interrupt(signum: int, frame: FrameType | None) -> None:
    received.append(signum)
    if _unsafe(frame):
        # not in the middle of an import: one cut short leaves a module half made (a C
        # module initialized twice warns on stderr when imported again) and one in the
        # import system's lock cleanup is printed as "ignored" and lost; nor in a finalizer
        # (``__del__``), where Python prints it as "ignored" and goes on. The signal comes
        # again in a moment (from a thread: sent from here, Python would handle it at once,
        # in this handler), until the import or finalizer is done
        import threading

        threading.Timer(0.005, _again, (signum, _commands[0])).start()
        return
    raise KeyboardInterrupt()


def _again(signum: int, command: int) -> None:
    """Send ``signum`` again, to the command it came to (when that command has ended, its end
    says it was interrupted; the next command, or the program cadence runs in, never gets it)."""
    if _commands[0] == command:
        os.kill(os.getpid(), signum)


def _unsafe(frame: FrameType | None) -> bool:
    """Whether the signal landed where an exception would be lost or leave things half made:
    while a module is imported (a lazy import of the work: the import system's own frames are
    on the stack) or while an object is finalized (a ``__del__`` is)."""
    while frame is not None:
        code = frame.f_code
        if code.co_filename.startswith("<frozen importlib") or code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def ignored() -> bool:
    """Whether a signal came while the command worked and it went on to its end (one lost
    where Python cannot raise it, e.g. in a weakref callback, or sent again after a late
    import): the command is still interrupted (exit 130)."""
    return bool(received)


def _let_finish(signum: int, frame: FrameType | None) -> None:
    received.append(signum)  # the command has finished: its exit code stands, exit follows


def _install(handler: Callable[[int, FrameType | None], None]) -> bool:
    """``handler`` for SIGINT and SIGTERM (those not ignored); False outside the main thread
    (a command run from a thread of another program: its handlers are that program's)."""
    try:
        for signum in SIGNALS:
            if signal.getsignal(signum) != signal.SIG_IGN:
                signal.signal(signum, handler)
    except ValueError:
        return False
    return True


def take_over_at_start() -> None:
    """Before the heavy imports: a signal ends the process with exit 130 and one line."""
    if is_program() and _install(_exit_now):
        _taken_over.append(True)
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)


def interrupt_on_signals() -> None:
    """As a command starts its work: a signal raises KeyboardInterrupt where the work is."""
    received.clear()
    _commands[0] += 1
    _install(_interrupt)


def command_finished() -> None:
    """The command's work is done and its exit code decided: a signal in the moments before
    the process exits changes neither (the program only; elsewhere the caller's handlers)."""
    _commands[0] += 1
    if _taken_over:
        _install(_let_finish)
        _interrupt_handled()


def _interrupt_handled() -> None:
    """Clear the interpreter's note of an unhandled KeyboardInterrupt. It notes one that leaves
    an ``exec`` or ``eval`` of source text (``dataclasses`` builds a class's methods so, when the
    work imports a module) as unhandled even when the command then handles it, and under
    ``python -m cadence`` kills the process with SIGINT after it exits (-2 instead of 130). Each
    ``exec`` of source text starts by clearing that note; no handler raises any more."""
    exec("")
