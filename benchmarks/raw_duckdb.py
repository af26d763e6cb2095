"""Baseline for the full build: raw DuckDB running the compiled SQL of the same models.

    python benchmarks/raw_duckdb.py WAREHOUSE PLAN.json

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


def main() -> int:
    warehouse, plan_path = sys.argv[1], sys.argv[2]
    with open(plan_path, encoding="utf-8") as f:
        plan = json.load(f)
    con = duckdb.connect(warehouse, config={"threads": plan["threads"]})
    for relation, csv_path in plan["seeds"]:
        path = csv_path.replace("'", "''")
        con.execute(
            f"create or replace table {relation} as "
            f"(select * from read_csv('{path}', header = true, auto_detect = true))"
        )
    for materialized, relation, sql_path in plan["models"]:
        with open(sql_path, encoding="utf-8") as f:
            sql = f.read()
        kind = "view" if materialized == "view" else "table"
        con.execute(f"create or replace {kind} {relation} as ({sql}\n)")
    con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
