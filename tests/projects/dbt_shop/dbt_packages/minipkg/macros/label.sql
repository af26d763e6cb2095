{% macro label(col) -%}
  {{ return(adapter.dispatch('label', 'minipkg')(col)) }}
{%- endmacro %}

{% macro default__label(col) -%}
  lower({{ col }})
{%- endmacro %}

{% macro twice(x) -%}
  ({{ x }} * 2)
{%- endmacro %}
