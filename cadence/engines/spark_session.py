"""The Spark session behind an engine: pyspark's ``SparkSession`` over Spark Connect
(``warehouse.remote``) or a local ``master``, and what pyspark raises, as cadence reports it.

Input: the warehouse config and the project root -> output: a session (UTC session time zone,
the config's ``settings`` and ``catalog``), or a CadenceError naming cadence.yml with a hint:
pyspark not installed, no Java for a local master, the Connect server unreachable, the embedded
Derby metastore booted by another JVM. Invariants: pyspark is imported here and nowhere else,
only when the first statement needs Spark (opening an engine never starts a JVM or connects),
and its loggers are silenced (cadence reports errors itself); an exception becomes one short
line (``engine_error``): EngineError for what the SQL did, CadenceError for a lost server.
Used by ``engines.spark``, whose cursors share one ``Session``.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cadence.engines.base import EngineError
from cadence.engines.duckdb import DuckDBEngine
from cadence.errors import CadenceError
from cadence.load.projectconfig import WarehouseConfig


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("JVM stacktrace")]
    return " ".join(lines[:2])[:500] if lines else type(exc).__name__


@dataclass
class Session:
    """What every cursor of one engine shares: the Spark session (opened on first use)."""

    warehouse: WarehouseConfig
    root: Path
    journal: DuckDBEngine  # the root handle's autocommit handle for intents (cursors: their own)
    lock: threading.Lock = field(default_factory=threading.Lock)
    spark: Any = None
    external: set[str] = field(default_factory=set)  # file copies known to exist this run


def connect(warehouse: WarehouseConfig, root: Path) -> Any:
    """A pyspark session for ``warehouse``: Spark Connect at ``remote``, or else a local
    ``master`` with its warehouse and Derby metastore under the project root."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pyspark.sql import SparkSession
    except ImportError:
        raise CadenceError(
            "engine spark needs pyspark, which is not installed",
            file="cadence.yml",
            hint="pip install 'cadence[spark]'",
        ) from None
    for noisy in ("pyspark", "SQLQueryContextLogger", "py4j"):
        # pyspark logs every failed query as JSON on stderr; cadence reports errors itself
        logging.getLogger(noisy).setLevel(logging.CRITICAL + 1)
    conf: dict[str, str] = {"spark.sql.session.timeZone": "UTC"}
    conf.update({str(k): str(v) for k, v in warehouse.settings.items()})
    if warehouse.connect_url:
        url = warehouse.connect_url
        _reachable(url)
        builder = SparkSession.builder.remote(url)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                spark = builder.getOrCreate()
            for key, value in conf.items():
                spark.conf.set(key, value)
        except Exception as exc:
            raise engine_error(exc, warehouse) from None
    else:
        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise CadenceError(
                "engine spark with 'master' needs a Java runtime, and none was found",
                file="cadence.yml",
                hint="install a JDK 17 (Debian: apt-get install openjdk-17-jre-headless) "
                "or point 'remote' at a Spark Connect server",
            )
        builder = SparkSession.builder.master(str(warehouse.master)).enableHiveSupport()
        builder = builder.config("spark.sql.warehouse.dir", str(root / "spark-warehouse"))
        builder = builder.config(
            "spark.driver.extraJavaOptions", f"-Dderby.system.home={root / 'spark-metastore'}"
        )
        for key, value in conf.items():
            builder = builder.config(key, value)
        try:
            spark = builder.getOrCreate()
        except Exception as exc:
            raise engine_error(exc, warehouse) from None
    if warehouse.catalog:
        try:
            spark.catalog.setCurrentCatalog(warehouse.catalog)
        except Exception as exc:
            raise engine_error(exc, warehouse) from None
    return spark


def _reachable(url: str) -> None:
    parsed = urlparse(url.replace("sc://", "http://", 1))
    host, port = parsed.hostname or "localhost", parsed.port or 15002
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        raise CadenceError(
            f"cannot reach the Spark Connect server at {host}:{port} ({exc.strerror or exc})",
            file="cadence.yml",
            hint="start it (pyspark's sbin/start-connect-server.sh) or fix warehouse.remote",
        ) from None


def engine_error(exc: BaseException, warehouse: WarehouseConfig) -> Exception:
    """What pyspark raised, as cadence reports it: the SQL's error (EngineError), or the
    server or metastore that cadence.yml points at (CadenceError, with a hint)."""
    text = str(exc)
    if "XSDB6" in text or "Another instance of Derby" in text:
        return CadenceError(
            "the Spark metastore is already booted by another JVM (embedded Derby admits one)",
            file="cadence.yml",
            hint="share one Spark Connect server (warehouse.remote) instead of local sessions",
        )
    if "UNAVAILABLE" in text or "Connection refused" in text or "failed to connect" in text:
        return CadenceError(
            f"lost the Spark Connect server at {warehouse.connect_url}: {_first_line(exc)}",
            file="cadence.yml",
            hint="check that the server is running and reachable",
        )
    return EngineError(_first_line(exc))


__all__ = ["Session", "connect", "engine_error"]
