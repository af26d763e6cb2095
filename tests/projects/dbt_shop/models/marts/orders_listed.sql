select
  {{ minipkg.column_list(ref('stg_orders'), except=['note', 'order_key']) }},
  '{{ ref('stg_customers') }}' as read_from
from {{ ref('stg_orders') }}
