{% test at_least(model, column_name, value, partition=none) %}
select {{ column_name }}{% if partition %}, {{ partition }}{% endif %}
from {{ model }}
where {{ column_name }} < {{ value }}
{% endtest %}
