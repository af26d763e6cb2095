-- Shopping carts with their last change. The demo data is relative to the hour of the run
-- ("updated 25 minutes before the hour"), so it works at any --at, and within an hour carts age
-- as a real queue's do: replay 10:00, 10:05, 10:10 ... and they enter and leave open_carts'
-- window. A table rebuilt at each tick; in production it is your cart service's table or a view
-- over it.
{{ config(materialized='table') }}

select
    cart_id,
    customer_id,
    timestamptz '{{ run_started_at.replace(minute=0, second=0, microsecond=0) }}'
        - updated_minutes_ago * interval 1 minute as updated_at,
    item_count,
    cast(value_cents / 100 as decimal(12, 2)) as cart_value,
    checked_out
from {{ ref('carts') }}
