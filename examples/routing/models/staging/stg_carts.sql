-- Shopping carts with their last change. The demo data is relative to the run ("updated 25
-- minutes ago"), so this is a table rebuilt at each tick; in production it is your cart service's
-- table or a view over it.
{{ config(materialized='table') }}

select
    cart_id,
    customer_id,
    timestamptz '{{ run_started_at }}' - updated_minutes_ago * interval 1 minute as updated_at,
    item_count,
    cast(value_cents / 100 as decimal(12, 2)) as cart_value,
    checked_out
from {{ ref('carts') }}
