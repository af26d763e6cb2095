select
    order_id,
    customer_id,
    {{ cents_to_eur('amount_cents') }} as amount_eur,
    cast(ordered_at as timestamp) as ordered_at
from {{ ref('orders') }}
