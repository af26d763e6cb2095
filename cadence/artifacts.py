"""Files cadence writes under target/: compiled SQL and run results.

Input: compiled models and run results -> output: files under ``target/``. Each file is written
to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

TARGET = "target"


def target_dir(root: Path) -> Path:
    return root / TARGET


def compiled_path(model_path: str) -> str:
    """Where a model's compiled SQL is written, relative to the project root."""
    return f"{TARGET}/compiled/{model_path}"


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary name and rename; on any failure (a full disk) the temporary file
    is removed and the old file stays as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_compiled(root: Path, model_path: str, sql: str) -> str:
    rel = compiled_path(model_path)
    write_text(root / rel, sql if sql.endswith("\n") else sql + "\n")
    return rel


def write_json(root: Path, name: str, data: Any) -> Path:
    path = target_dir(root) / name
    # no indent: only then does json use its C encoder (run results of 10,000 models)
    write_text(path, json.dumps(data, default=str, separators=(",", ":")) + "\n")
    return path
