"""Staging members files: COPYs to owner-only temporary names, before ``roster`` syncs them.

Input: an open DuckDB engine, the SQL of one segment's file (``stage``) or of many segments'
files with a ``segment`` column (``stage_all``: one COPY partitioned by segment) and their final
paths -> output: (temporary, final) pairs, each temporary file written (not synced) beside its
final name, ``.<name>.<pid>.tmp``, 0600; ``roster`` fdatasyncs and renames them.

Invariants: nothing is written under a final name here; a temporary file that a COPY failed to
write is removed; a partitioned COPY writes into a ``.batch-<pid>.tmp`` folder of the members
folder, emptied and removed before returning (a killed one is swept by the next write). Its
files are side by side (``hive_file_pattern false``, DuckDB 2.0 here: no folder per segment
to make and then remove, 600 of them for 300 segments, the dearest part of these COPYs on a busy
disk), each told apart by what it holds; an older DuckDB writes a ``segment=<name>/`` folder
each, as before.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from cadence.disk import artifacts
from cadence.engines.base import Engine, EngineError


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def stage(engine: Engine, sql: str, final: Path, options: str = "") -> Path:
    """COPY ``sql`` to an owner-only temporary name beside ``final`` (not synced yet)."""
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        os.close(os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY | os.O_NOFOLLOW, 0o600))
        engine.execute(f"copy ({sql}) to {literal(str(tmp))} (format parquet{options})")
        os.chmod(tmp, artifacts.FILE_MODE)
    except BaseException:
        unlink(tmp)
        raise
    return tmp


def unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def stage_all(
    engine: Engine,
    members: Path,
    finals: dict[str, Path],
    together: str,
    options: str,
    fail: Callable[[str, BaseException], None],
    alone: Callable[[str], str],
) -> tuple[list[tuple[Path, Path]], dict[Path, str]]:
    """Stage a file per segment (``finals``) from one COPY of ``together`` (rows with a
    ``segment`` column) partitioned by segment; a segment the COPY left no single file for (no
    rows, or an unexpected layout) is staged alone from ``alone(segment)``. Returns the staged
    (temporary, final) pairs and the segment of each final."""
    staged: list[tuple[Path, Path]] = []
    owner: dict[Path, str] = {}
    left = list(finals)
    if len(finals) > 1:
        keep_column = "true" if "c.segment" in together else "false"  # parts keep theirs
        batch = members / f".batch-{os.getpid()}.tmp"
        try:
            found = _copy_partitioned(engine, together, batch, list(finals), keep_column, options)
            left = []
            for segment, final in finals.items():
                if segment not in found:
                    left.append(segment)
                    continue
                tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
                os.replace(found[segment], tmp)
                os.chmod(tmp, artifacts.FILE_MODE)
                staged.append((tmp, final))
                owner[final] = segment
        except (OSError, EngineError):
            left = [s for s in finals if finals[s] not in owner]
        finally:
            try:
                os.rmdir(batch)  # every file moved out: nothing else is in it
            except FileNotFoundError:
                pass
            except OSError:
                shutil.rmtree(batch, ignore_errors=True)
    for segment in left:
        final = finals[segment]
        try:
            staged.append((stage(engine, alone(segment), final, options), final))
            owner[final] = segment
        except (OSError, EngineError) as exc:
            fail(segment, exc)
    return staged, owner


# DuckDB writes a partitioned COPY's files side by side instead of in a ``segment=<name>/``
# folder each: 600 folders fewer to make and then remove for 300 segments; False once a DuckDB
# refuses the option (an older one)
_side_by_side = [True]
_SIDE_BY_SIDE = ", hive_file_pattern false"


def _copy_partitioned(
    engine: Engine, together: str, batch: Path, segments: list[str], keep_column: str, options: str
) -> dict[str, Path]:
    """COPY ``together`` into ``batch`` partitioned by segment -> the file of each segment (one
    written to several files, or to none, is left out: the caller stages it alone). Files side
    by side are told apart by their ``segment`` column's statistics (parts: one query of the
    footers) or by the COPY's own report (bases, which have no such column)."""
    sql = (
        f"copy ({together}) to {literal(str(batch))} (format parquet, "
        f"partition_by (segment), write_partition_columns {keep_column}, "
        f"filename_pattern 'data'{options}"
    )
    if _side_by_side[0]:
        try:
            if keep_column == "true":
                engine.execute(f"{sql}{_SIDE_BY_SIDE})")
                rows = engine.query(
                    "select file_name, stats_min_value, stats_max_value from parquet_metadata("
                    f"{literal(str(batch / '*.parquet'))}) where path_in_schema = 'segment'"
                )
                held = [(str(f), low) for f, low, high in rows if low is not None and low == high]
            else:
                rows = engine.query(f"{sql}{_SIDE_BY_SIDE}, return_stats true)")
                held = [(str(r[0]), (r[5] or {}).get("segment")) for r in rows if len(r) > 5]
        except EngineError as exc:
            refused = str(exc).lower()
            if "unrecognized option" not in refused and "hive_file_pattern" not in refused:
                raise
            _side_by_side[0] = False  # an older DuckDB: a folder per segment, as before
            shutil.rmtree(batch, ignore_errors=True)
        else:
            return _one_each(held, batch, segments)
    engine.execute(sql + ")")
    found = {s: _single(batch / f"segment={s}") for s in segments}
    return {s: path for s, path in found.items() if path is not None}


def _one_each(held: list[tuple[str, object]], batch: Path, segments: list[str]) -> dict[str, Path]:
    """(file, segment) pairs (a file may appear once per row group) -> the one file of each of
    ``segments``."""
    files: dict[str, set[str]] = {}
    for name, segment in held:
        files.setdefault(str(segment), set()).add(name)
    out: dict[str, Path] = {}
    for segment in segments:
        names = files.get(segment, set())
        path = Path(next(iter(names))) if len(names) == 1 else None
        if path is not None and path.parent == batch:
            out[segment] = path
    return out


def _single(folder: Path) -> Path | None:
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    return folder / names[0] if len(names) == 1 and names[0].endswith(".parquet") else None
