"""``cadence test`` after the fact (build.testing): what it says about models that are not live."""

from __future__ import annotations

from typing import Any

YML = """\
version: 2
models:
  - name: customer_value
    columns:
      - name: id
        tests: [not_null]
  - name: fine
    columns:
      - name: id
        tests: [not_null]
"""


def test_tests_of_a_model_never_published_are_skipped_naming_it(
    make_project: Any, cli: Any
) -> None:
    """A model whose first build failed its tests has no live relation: ``cadence test`` says
    it is not published yet and skips its tests, instead of a catalog error."""
    root = make_project(
        {
            "models/customer_value.sql": "select null::int as id\n",
            "models/fine.sql": "select 1 as id\n",
            "models/schema.yml": YML,
        }
    )
    assert cli(root, "run", "--at", "2026-03-02T05:00").exit_code == 1
    result = cli(root, "test")
    assert "Catalog Error" not in result.output
    assert "does not exist" not in result.output
    assert "model 'customer_value' is not published yet" in result.output
    assert result.output.count("not published yet") == 1
    assert "not_null_fine_id" in result.output
