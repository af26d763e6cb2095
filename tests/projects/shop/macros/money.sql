{% macro cents_to_eur(column) -%}
    ({{ column }} / 100.0)
{%- endmacro %}
