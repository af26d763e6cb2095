-- Shopping carts with their last change. Demo data is relative to the run (see stg_orders for
-- why this is a table); in production this is your cart service's table.


with source as (

    select * from "main"."carts"

)

select
    cart_id,
    customer_id,
    timestamptz '2026-06-01 05:00:00+02:00' - updated_minutes_ago * interval 1 minute as updated_at,
    item_count,
    cast(value_cents / 100 as decimal(12, 2)) as cart_value,
    checked_out
from source
