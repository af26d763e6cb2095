{# wins over minipkg's default__label: dispatch search_order puts dbt_shop first #}
{% macro duckdb__label(col) -%}
  upper({{ col }}) || '!'
{%- endmacro %}
