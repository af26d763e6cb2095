"""The routing example for the webhook tests: its receiver (examples/routing/receiver.py, loaded
as a module) and a copy of the project pointed at a receiver on a free port."""

from __future__ import annotations

import base64
import importlib.util
import shutil
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "routing"
SECRET = "whsec_" + base64.b64encode(b"routing-example-test-secret-32by").decode()
SECRET_ENV = "ROUTING_WEBHOOK_SECRET"
EXAMPLE_URL = "http://127.0.0.1:8788/hooks/cadence"


def _load_receiver() -> Any:
    name = "routing_receiver"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLE / "receiver.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


receiver_module = _load_receiver()
Receiver = receiver_module.Receiver
Fault = receiver_module.Fault


def copy_routing(dest: Path, url: str, **export: Any) -> Path:
    """Copy examples/routing to ``dest`` with its webhook pointed at ``url`` (and other export
    keys replaced, e.g. ``batch_size=3``)."""
    shutil.copytree(
        EXAMPLE, dest, ignore=shutil.ignore_patterns("target", "*.duckdb*", "received.jsonl")
    )
    yml = dest / "cadence.yml"
    text = yml.read_text().replace(EXAMPLE_URL, url)
    for key, value in export.items():
        lines = text.splitlines()
        found = [i for i, line in enumerate(lines) if line.strip().startswith(f"{key}:")]
        if found:
            lines[found[0]] = f"      {key}: {value}"
        else:
            at = next(i for i, line in enumerate(lines) if "secret_env:" in line)
            lines.insert(at + 1, f"      {key}: {value}")
        text = "\n".join(lines) + "\n"
    assert url in text
    yml.write_text(text)
    return dest
