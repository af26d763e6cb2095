select customer_id, sum(amount_eur) as lifetime_eur, max(ordered_at) as last_order_at
from {{ ref('stg_orders') }}
group by customer_id
