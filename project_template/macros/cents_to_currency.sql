{#-
  Money arrives in integer cents from the shop system; segments and channels work in currency
  units. Usage: {{ cents_to_currency('amount_cents') }} as amount
-#}
{% macro cents_to_currency(column_name, scale=2) -%}
    cast({{ column_name }} / 100 as decimal(12, {{ scale }}))
{%- endmacro %}
