"""Baseline for the full build: raw DuckDB running the compiled SQL of the same models.

    python benchmarks/raw_duckdb.py WAREHOUSE PLAN.json [--pattern | --membership]

PLAN.json = {"threads": N, "seeds": [[relation, csv_path], ...],
             "models": [[materialized, relation, compiled_sql_path, key], ...]} in topological
order (``key``: a segment's member key, null for other models; it may be left out).
One process, one connection, autocommit: each seed is loaded with read_csv and each model runs as
``create or replace table|view RELATION as (SQL)`` -- what cadence executes, without staging,
tests, state or the files it writes. Run by benchmarks/run.py as a whole process, so Python start
and ``import duckdb`` count on both sides.

``--pattern``: each model published as SPEC section 6 asks, in DuckDB alone: a transaction, a
staging table renamed over the live one, a build row. ``--membership``: that, and for each
segment the membership rows SPEC section 7 asks for in the same transaction (a first build into
a fresh warehouse: every member entered), each with its ``change_id`` from a sequence -- the
floor of any implementation of those two sections, however cheap its own bookkeeping.
"""

from __future__ import annotations

import json
import sys

import duckdb

BUILDS = """create table if not exists builds (run_id varchar, model varchar, kind varchar,
    tick timestamp, started_at timestamp, finished_at timestamp, status varchar, reason varchar,
    rows bigint, duration_s double, sql_hash varchar, error varchar)"""


MEMBERSHIP = (
    "create schema if not exists _cadence",
    "create sequence if not exists _cadence.membership_change_id",
    """create table if not exists _cadence.membership_changes (change_id bigint, segment varchar,
    key varchar, change varchar, run_id varchar, tick timestamp, "at" timestamp,
    event_time timestamp)""",
)
ENTERED = """insert into _cadence.membership_changes select
    nextval('_cadence.membership_change_id'), ?, cast({key} as varchar), 'entered', 'run',
    cast(now() as timestamp), cast(now() as timestamp), cast(null as timestamp) from {table}"""


def publish(
    con: duckdb.DuckDBPyConnection, kind: str, relation: str, sql: str, key: str | None
) -> None:
    """One model as cadence publishes it, without tests or files; with the membership rows of
    a segment (``key``) when given one."""
    schema, name = relation.split(".")
    con.execute("begin transaction")
    if kind == "view":
        con.execute(f"create or replace view {relation} as ({sql}\n)")
        rows = None
    else:
        staging = f'{schema}."{name.strip(chr(34))}__staging"'
        rows = con.execute(f"create or replace table {staging} as ({sql}\n)").fetchall()[0][0]
        if key is not None:
            column = '"' + key.replace('"', '""') + '"'
            con.execute(ENTERED.format(key=column, table=staging), [name.strip('"')])
        con.execute(f"drop table if exists {relation}")
        con.execute(f"alter table {staging} rename to {name}")
    con.execute(
        "insert into builds values (?, ?, 'model', null, now(), now(), 'success', 'due', ?, "
        "0.0, ?, null)",
        ["run", relation, rows, str(hash(sql))],
    )
    con.execute("commit")


def main() -> int:
    warehouse, plan_path = sys.argv[1], sys.argv[2]
    membership = "--membership" in sys.argv[3:]
    pattern = membership or "--pattern" in sys.argv[3:]
    with open(plan_path, encoding="utf-8") as f:
        plan = json.load(f)
    con = duckdb.connect(warehouse, config={"threads": plan["threads"]})
    for relation, csv_path in plan["seeds"]:
        path = csv_path.replace("'", "''")
        con.execute(
            f"create or replace table {relation} as "
            f"(select * from read_csv('{path}', header = true, auto_detect = true))"
        )
    if pattern:
        con.execute(BUILDS)
    for statement in MEMBERSHIP if membership else ():
        con.execute(statement)
    for materialized, relation, sql_path, *rest in plan["models"]:
        key = rest[0] if rest and membership else None
        with open(sql_path, encoding="utf-8") as f:
            sql = f.read()
        kind = "view" if materialized == "view" else "table"
        if pattern:
            publish(con, kind, relation, sql, key)
        else:
            con.execute(f"create or replace {kind} {relation} as ({sql}\n)")
    con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
