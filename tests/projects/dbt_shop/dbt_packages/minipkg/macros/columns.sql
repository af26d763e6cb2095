{# a package's private helper, called by its namespace as packages do #}
{% macro _require_relation(obj, caller_name) %}
  {%- if not (obj is mapping and obj.get('metadata', {}).get('type', '').endswith('Relation')) -%}
    {%- do exceptions.raise_compiler_error(caller_name ~ " expected a Relation, got " ~ obj) -%}
  {%- endif -%}
{% endmacro %}

{% macro column_list(relation, except=[]) -%}
  {%- do minipkg._require_relation(relation, 'column_list') -%}
  {%- if not execute -%}{{ return('*') }}{%- endif -%}
  {%- set names = [] -%}
  {%- for c in adapter.get_columns_in_relation(relation) if c.name not in except -%}
    {%- do names.append(adapter.quote(c.name)) -%}
  {%- endfor -%}
  {{ return(names | join(', ')) }}
{%- endmacro %}
