-- Shopping carts with their last change. Demo data is relative to the run (see stg_orders for
-- why this is a table); in production this is your cart service's table.
{{ config(materialized='table') }}

with source as (

    select * from {{ ref('carts') }}

)

select
    cart_id,
    customer_id,
    timestamptz '{{ run_started_at }}' - updated_minutes_ago * interval 1 minute as updated_at,
    item_count,
    {{ cents_to_currency('value_cents') }} as cart_value,
    checked_out
from source
