"""``cadence diff``: the project at a git ref against the working tree (SPEC §10).

Input: the loaded working-tree ``Project``, its ``StateSnapshot`` (read-only, for recorded build
durations), a git ref (default: the merge base with the default branch) and ``now`` -> output:
``DiffReport`` (frozen): changed, added and removed models, every model and channel downstream
of them, changes of cadence.yml itself (``configdiff``) with the models and channels they
reach, cadence changes with provenance, and builds/day and compute/day before -> after per
affected model, per channel and in total (money per month from the working tree's ``cost:``,
applied to both sides: the price of compute is the warehouse's, not the change's).

Invariants:

- The project at the ref is read from git objects (``git archive`` into a private temporary
  folder); the working tree and its target/ are never touched, nothing is built or queried beyond
  the state snapshot.
- Models are compared by rendered SQL, whitespace- and comment-insensitive (sqlglot), and by
  effective config (config, tests, cadence). Macro, var and env var changes therefore show up
  exactly in the models whose rendered SQL they change.
- Only affected models are listed: changed, added, removed, their downstream, and models whose
  cadence or builds/day the change moves (a new fast consumer pulls in its upstream more often).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cadence.errors import CadenceError, UsageError
from cadence.load.costconfig import CostConfig
from cadence.plan.history import StateSnapshot
from cadence.review.configdiff import ConfigChange, config_changes
from cadence.review.cost import CostReport, cost_report, per_month

DEFAULT_BRANCHES = ("main", "master")


@dataclass(frozen=True)
class ModelChange:
    name: str
    change: str  # "changed" | "added" | "removed"
    reasons: tuple[str, ...]  # e.g. "SQL", "config: tags ['a'] -> ['b']"
    path: str


@dataclass(frozen=True)
class CadenceChange:
    name: str
    before: str
    after: str
    before_provenance: str
    after_provenance: str


@dataclass(frozen=True)
class Delta:
    """One line of the cost section: builds and compute per day, before -> after."""

    name: str
    builds_before: float
    builds_after: float
    compute_before: float | None  # None: no history (no recorded builds)
    compute_after: float | None


@dataclass(frozen=True)
class DiffReport:
    ref: str  # what the user asked for, or the default branch used
    commit: str
    at: dt.datetime
    horizon: str
    changes: tuple[ModelChange, ...]
    downstream: tuple[str, ...]  # models downstream of a change (not changed themselves)
    channels: tuple[str, ...]  # channels a changed or downstream model feeds
    cadence_changes: tuple[CadenceChange, ...]
    models: tuple[Delta, ...]  # every affected model
    channel_costs: tuple[Delta, ...]
    total: Delta
    price: CostConfig | None = None  # the working tree's ``cost:``, for both sides

    def per_month(self, compute_s_per_day: float | None) -> float | None:
        return per_month(compute_s_per_day, self.price)

    config: tuple[ConfigChange, ...] = ()  # changes of cadence.yml itself

    @property
    def unchanged(self) -> bool:
        return not self.models and not self.changes and not self.config

    @property
    def affected(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.models)

    def cost_increase_pct(self) -> float:
        """Increase of the total, in percent: compute/day when both sides have history, else
        builds/day (0 when nothing was built before and nothing is after)."""
        t = self.total
        if t.compute_before and t.compute_after is not None:
            before, after = t.compute_before, t.compute_after
        else:
            before, after = t.builds_before, t.builds_after
        if before == 0:
            return 0.0 if after == 0 else float("inf")
        return (after - before) / before * 100


# -- git ---------------------------------------------------------------------------------------


def _git(cwd: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
        )
    except FileNotFoundError:
        raise UsageError(
            "git is not installed", hint="cadence diff reads the project from git"
        ) from None
    if done.returncode != 0:
        raise _GitFailed(done.stderr.strip())
    return done.stdout.strip()


class _GitFailed(Exception):
    pass


def resolve_ref(root: Path, ref: str | None) -> tuple[str, str, Path, str]:
    """(label, commit, repository top level, project folder inside it) for ``ref``; without a
    ref the merge base of HEAD with the default branch (origin/HEAD, main or master)."""
    try:
        top = Path(_git(root, "rev-parse", "--show-toplevel"))
    except _GitFailed:
        raise UsageError(
            f"{root} is not inside a git repository (cadence diff compares the project with a "
            "git commit)",
            hint="make it one and commit this version: git init && git add -A && git commit -m "
            "'first version'; then change something and run cadence diff again (in a clone: "
            "cadence diff main)",
        ) from None
    try:
        _git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    except _GitFailed:
        raise UsageError(
            f"the git repository at {top} has no commit yet: nothing to compare with",
            hint="commit this version first: git add -A && git commit -m 'first version'",
        ) from None
    prefix = root.resolve().relative_to(top.resolve()).as_posix()
    if ref is None:
        label, base = _default_branch(root)
        try:
            commit = _git(root, "merge-base", "HEAD", base)
        except _GitFailed:
            raise UsageError(
                f"no merge base between HEAD and {base}",
                hint="name the ref to compare with: cadence diff REF",
            ) from None
        return f"merge base with {label}", commit, top, prefix
    try:
        commit = _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except _GitFailed:
        commit = ""
    if not commit:
        raise UsageError(
            f"unknown git ref '{ref}'",
            hint="use a branch, tag or commit: cadence diff main, cadence diff HEAD~1",
        )
    return ref, commit, top, prefix


def _default_branch(root: Path) -> tuple[str, str]:
    try:
        head = _git(root, "symbolic-ref", "--quiet", "refs/remotes/origin/HEAD")
        return head.removeprefix("refs/remotes/"), head
    except _GitFailed:
        pass
    for name in DEFAULT_BRANCHES:
        try:
            _git(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{name}")
            return name, f"refs/heads/{name}"
        except _GitFailed:
            continue
    raise UsageError(
        "cannot tell the default branch (no origin/HEAD, main or master)",
        hint="name the ref to compare with: cadence diff REF",
    )


def extract(top: Path, commit: str, prefix: str, dest: Path) -> Path | None:
    """Write the project folder as it is at ``commit`` under ``dest``; None when the project
    did not exist there. Reads git objects only (``git archive``)."""
    path = prefix if prefix not in ("", ".") else "."
    done = subprocess.run(
        ["git", "archive", "--format=tar", commit, "--", path],
        cwd=top,
        capture_output=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        return None  # the path does not exist at that commit
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
        archive.extractall(dest, filter="data")
    folder = dest / PurePosixPath(prefix) if prefix not in ("", ".") else dest
    found = (folder / "cadence.yml").is_file() or (folder / "dbt_project.yml").is_file()
    return folder if found else None


def _same_options(project: Any) -> Any:
    """The working tree's load options for the project at the other ref; a dbt project's
    profile is read from where the working tree's was (profiles.yml is rarely committed)."""
    from dataclasses import replace

    options = project.options
    dbt = project.parsed.config.dbt
    if dbt is None or dbt.profile_file is None or options.profiles_dir:
        return options
    found = Path(dbt.profile_file)
    folder = found.parent if found.is_absolute() else (project.root / found).parent
    return replace(options, profiles_dir=str(folder))


# -- comparison --------------------------------------------------------------------------------


def normalize_sql(sql: str) -> str:
    """The SQL without comments, with canonical spacing (sqlglot); tokens when it cannot parse."""
    import sqlglot
    from sqlglot.errors import SqlglotError

    try:
        statements = sqlglot.parse(sql, read="duckdb")
        return ";".join(s.sql(dialect="duckdb", comments=False) for s in statements if s)
    except SqlglotError:
        try:
            tokens = sqlglot.tokenize(sql, read="duckdb")
        except SqlglotError:
            return " ".join(sql.split())
        return " ".join(t.text for t in tokens)


def _config(model: Any) -> dict[str, Any]:
    values = dataclasses.asdict(model.config)
    values.pop("origins", None)
    return values


def _tests(project: Any, name: str) -> list[tuple[Any, ...]]:
    return sorted(
        (
            t.kind,
            t.column or "",
            repr(sorted(t.args.items())),
            t.severity,
            t.where or "",
            t.sql or "",
        )
        for t in project.parsed.tests
        if t.model == name
    )


def _reasons(before: Any, after: Any, name: str) -> list[str]:
    old, new = before.parsed.model(name), after.parsed.model(name)
    reasons = []
    # paths resolved against the project folder (external_location) differ only by the folder
    old_sql = old.rendered.replace(str(before.root), str(after.root))
    if old_sql != new.rendered and normalize_sql(old_sql) != normalize_sql(new.rendered):
        reasons.append("SQL")
    a, b = _config(old), _config(new)
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            reasons.append(f"config: {key} {_show(a.get(key))} -> {_show(b.get(key))}")
    if _tests(before, name) != _tests(after, name):
        reasons.append("tests")
    return reasons


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    return repr(value)


def _cadence(project: Any, name: str) -> tuple[str, tuple[str, ...]]:
    cad = project.cadences.of(name)
    return cad.describe(), cad.channels


def compare(
    before: Any | None,
    after: Any,
    durations: dict[str, float | None],
    now: dt.datetime,
    span: dt.timedelta,
    horizon: str,
    ref: str,
    commit: str,
) -> DiffReport:
    """What changed from ``before`` (None: the project did not exist) to ``after``."""
    new_names = after.model_names()
    old_names = before.model_names() if before is not None else []
    old_set, new_set = set(old_names), set(new_names)
    changes: list[ModelChange] = []
    for name in new_names:
        if name not in old_set:
            changes.append(ModelChange(name, "added", (), after.parsed.model(name).path))
        else:
            reasons = _reasons(before, after, name)
            if reasons:
                changes.append(
                    ModelChange(name, "changed", tuple(reasons), after.parsed.model(name).path)
                )
    for name in old_names:
        if name not in new_set:
            assert before is not None
            changes.append(ModelChange(name, "removed", (), before.parsed.model(name).path))
    touched = {c.name for c in changes}

    downstream: set[str] = set()
    for c in changes:
        if c.change != "removed":
            downstream |= after.dag.descendants(c.name)
        elif before is not None:
            downstream |= {n for n in before.dag.descendants(c.name) if n in new_set}
    downstream = {n for n in downstream if n in new_set and n not in touched}

    channels: set[str] = set()
    for name in touched | downstream:
        if name in new_set:
            channels |= set(after.cadences.of(name).channels)
        elif before is not None:
            channels |= set(before.cadences.of(name).channels)

    config = config_changes(before, after)
    for change in config:  # a channel's own setting reaches it even when no model changed
        channels |= set(change.channels)

    cadence_changes = []
    if before is not None:
        for name in new_names:
            if name in old_set and _cadence(before, name) != _cadence(after, name):
                b, a = before.cadences.of(name), after.cadences.of(name)
                cadence_changes.append(
                    CadenceChange(name, b.describe(), a.describe(), b.provenance(), a.provenance())
                )

    cost_after = _cost(after, durations, now, span, horizon)
    cost_before = _cost(before, durations, now, span, horizon) if before is not None else None
    affected = touched | downstream | {c.name for c in cadence_changes}
    for m in cost_after.models:
        old = cost_before.model(m.name) if cost_before is not None else None
        if old is None or old.builds != m.builds:
            affected.add(m.name)
    order = [n for n in new_names if n in affected] + [n for n in old_names if n not in new_set]
    model_deltas = tuple(_model_delta(n, cost_before, cost_after) for n in order)
    channel_deltas = _channel_deltas(cost_before, cost_after, channels)
    total = Delta(
        "total",
        cost_before.total_builds_per_day if cost_before else 0.0,
        cost_after.total_builds_per_day,
        _total_compute(cost_before),
        _total_compute(cost_after),
    )
    return DiffReport(
        ref=ref,
        commit=commit,
        at=now,
        horizon=horizon,
        changes=tuple(changes),
        downstream=tuple(n for n in new_names if n in downstream),
        channels=tuple(sorted(channels)),
        cadence_changes=tuple(cadence_changes),
        models=model_deltas,
        channel_costs=channel_deltas,
        total=total,
        price=after.parsed.config.cost,
        config=config,
    )


def _cost(
    project: Any, durations: dict[str, float | None], now: dt.datetime, span: dt.timedelta, h: str
) -> CostReport:
    return cost_report(project.parsed, project.dag, project.cadences, durations, now, span, h)


def _total_compute(report: CostReport | None) -> float | None:
    if report is None:
        return 0.0
    if report.no_history and len(report.no_history) == sum(1 for m in report.models if m.builds):
        return None
    return report.total_compute_s_per_day


def _model_delta(name: str, before: CostReport | None, after: CostReport) -> Delta:
    old = before.model(name) if before is not None else None
    new = after.model(name)
    return Delta(
        name,
        old.builds_per_day if old else 0.0,
        new.builds_per_day if new else 0.0,
        (old.compute_s_per_day if old.builds else 0.0) if old else 0.0,
        (new.compute_s_per_day if new.builds else 0.0) if new else 0.0,
    )


def _channel_deltas(
    before: CostReport | None, after: CostReport, reached: set[str]
) -> tuple[Delta, ...]:
    old = {c.name: c for c in before.channels} if before is not None else {}
    new = {c.name: c for c in after.channels}
    known_before, known_after = (
        _total_compute(before) is not None,
        _total_compute(after) is not None,
    )
    out = []
    for name in [*new, *(n for n in old if n not in new)]:
        o, n = old.get(name), new.get(name)
        delta = Delta(
            name,
            o.builds_per_day if o else 0.0,
            n.builds_per_day if n else 0.0,
            (o.compute_s_per_day if o else 0.0) if known_before else None,
            (n.compute_s_per_day if n else 0.0) if known_after else None,
        )
        moved = (
            abs(delta.builds_after - delta.builds_before) > 1e-9
            or abs((delta.compute_after or 0) - (delta.compute_before or 0)) > 1e-9
        )
        if name in reached or moved:
            out.append(delta)
    return tuple(out)


def diff_project(
    project: Any,
    state: StateSnapshot,
    ref: str | None,
    now: dt.datetime,
    span: dt.timedelta,
    horizon: str,
) -> DiffReport:
    """The one library call behind ``cadence diff``."""
    from cadence.errors import ProjectErrors

    load = type(project).load  # the facade's own loader: review sits below the facade
    label, commit, top, prefix = resolve_ref(project.root, ref)
    durations = {n: state.of(n).avg_duration_s for n in project.model_names()}
    with tempfile.TemporaryDirectory(prefix="cadence-diff-") as tmp:  # created 0700
        folder = extract(top, commit, prefix, Path(tmp))
        before = None
        if folder is not None:
            try:
                before = load(folder, use_cache=False, options=_same_options(project))
            except CadenceError as exc:
                errors = exc.errors if isinstance(exc, ProjectErrors) else (exc,)
                raise ProjectErrors(
                    [
                        CadenceError(
                            f"at {label} ({commit[:10]}): {e.message}",
                            file=e.file,
                            line=e.line,
                            hint=e.hint,
                        )
                        for e in errors
                    ]
                ) from None
            for name in before.model_names():
                durations.setdefault(name, state.of(name).avg_duration_s)
        return compare(before, project, durations, now, span, horizon, label, commit)
