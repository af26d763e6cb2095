{% macro cents_to_dollars(col) -%}
  {{ return(adapter.dispatch('cents_to_dollars', 'dbt_shop')(col)) }}
{%- endmacro %}

{% macro default__cents_to_dollars(col) -%}
  ({{ col }} / 100.0)
{%- endmacro %}

{% macro duckdb__cents_to_dollars(col) -%}
  cast(round({{ col }} / 100.0, 2) as decimal(12, 2))
{%- endmacro %}
