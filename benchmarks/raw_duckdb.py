"""Baseline for the full build: raw DuckDB running the compiled SQL of the same models.

    python benchmarks/raw_duckdb.py WAREHOUSE PLAN.json [--pattern]

PLAN.json = {"threads": N, "seeds": [[relation, csv_path], ...],
             "models": [[materialized, relation, compiled_sql_path], ...]} in topological order.
One process, one connection, autocommit: each seed is loaded with read_csv and each model runs as
``create or replace table|view RELATION as (SQL)`` -- what cadence executes, without staging,
tests, state or the files it writes. Run by benchmarks/run.py as a whole process, so Python start
and ``import duckdb`` count on both sides.
"""

import json
import sys

import duckdb


BUILDS = """create table if not exists builds (run_id varchar, model varchar, kind varchar,
    tick timestamp, started_at timestamp, finished_at timestamp, status varchar, reason varchar,
    rows bigint, duration_s double, sql_hash varchar, error varchar)"""


def publish(con: duckdb.DuckDBPyConnection, kind: str, relation: str, sql: str) -> None:
    """One model as cadence publishes it, without tests, membership or files."""
    schema, name = relation.split(".")
    con.execute("begin transaction")
    if kind == "view":
        con.execute(f"create or replace view {relation} as ({sql}\n)")
        rows = None
    else:
        staging = f'{schema}."{name.strip(chr(34))}__staging"'
        rows = con.execute(f"create or replace table {staging} as ({sql}\n)").fetchall()[0][0]
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
    pattern = "--pattern" in sys.argv[3:]
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
    for materialized, relation, sql_path in plan["models"]:
        with open(sql_path, encoding="utf-8") as f:
            sql = f.read()
        kind = "view" if materialized == "view" else "table"
        if pattern:
            publish(con, kind, relation, sql)
        else:
            con.execute(f"create or replace {kind} {relation} as ({sql}\n)")
    con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
