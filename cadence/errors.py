"""Errors users see: one root, each with a place (file, line, column) and a hint.

Rendered like a compiler::

    models/segments/vip.sql:3:14: error: unknown ref 'ordrs'
      hint: did you mean 'orders'? (models/staging/orders.sql)

Stages collect every problem they find and raise them together as a ``ProjectErrors``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class CadenceError(Exception):
    """A problem the user can fix. Carries where it is and what to do."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        hint: str | None = None,
        severity: str = "error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.hint = hint
        self.severity = severity

    def location(self) -> str:
        if not self.file:
            return ""
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def render(self) -> str:
        where = self.location()
        head = (
            f"{where}: {self.severity}: {self.message}"
            if where
            else f"{self.severity}: {self.message}"
        )
        if self.hint:
            head += "\n  hint: " + self.hint.replace("\n", "\n        ")
        return head

    def __str__(self) -> str:
        return self.render()


class DiskFull(CadenceError):
    """A write the disk (or quota) had no room for: a failure of the run (exit 1), not of the
    project or its usage."""

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "severity": self.severity,
            "message": self.message,
            "hint": self.hint,
        }


class ProjectErrors(CadenceError):
    """Several problems found at once; rendered one after another."""

    def __init__(self, errors: Iterable[CadenceError]) -> None:
        self.errors: tuple[CadenceError, ...] = tuple(_flatten(errors))
        first = self.errors[0] if self.errors else CadenceError("unknown error")
        super().__init__(first.message, file=first.file, line=first.line, hint=first.hint)

    def render(self) -> str:
        body = "\n".join(e.render() for e in self.errors)
        n = len(self.errors)
        return body + (f"\n{n} errors found" if n > 1 else "")


class UsageError(CadenceError):
    """A command was called wrongly (bad selector, unknown model on the command line)."""


class LockHeld(CadenceError):
    """Another run holds the project lock."""


class WarehouseBusy(CadenceError):
    """Another process has the warehouse file open (a BI tool, a notebook, a run).
    ``holder`` names it as the engine reported it (e.g. ``/usr/bin/python3 (PID 4242)``)."""

    def __init__(self, message: str, *, holder: str, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.holder = holder


def _flatten(errors: Iterable[CadenceError]) -> Iterable[CadenceError]:
    # One problem is reported once, though a folder config checked for each model it applies
    # to finds it again per model.
    seen: set[tuple[type, str]] = set()
    for e in errors:
        for one in e.errors if isinstance(e, ProjectErrors) else (e,):
            key = (type(one), one.render())
            if key not in seen:
                seen.add(key)
                yield one


@dataclass
class ErrorCollector:
    """Gathers problems so a stage can report all of them at once."""

    errors: list[CadenceError]

    def __init__(self) -> None:
        self.errors = []

    def add(self, error: CadenceError) -> None:
        self.errors.append(error)

    def raise_if_any(self) -> None:
        if self.errors:
            raise ProjectErrors(self.errors)

    def finish(self, into: list[CadenceError] | None) -> None:
        """End of a stage: hand problems to the caller's list, or raise them now."""
        if into is None:
            self.raise_if_any()
        else:
            into.extend(self.errors)


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to ``word``, or None when nothing is close."""
    import difflib

    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_key_error(
    key: str, allowed: Iterable[str], *, what: str, file: str, line: int | None
) -> CadenceError:
    allowed = sorted(allowed)
    guess = did_you_mean(key, allowed)
    hint = f"did you mean '{guess}'?" if guess else "allowed keys: " + ", ".join(allowed)
    return CadenceError(f"unknown {what} key '{key}'", file=file, line=line, hint=hint)
