-- Customers who left a cart 15 to 120 minutes ago without checking out: the routing team calls
-- or messages them while the purchase is still on their mind. Refreshed every 5 minutes.
-- event_time: when each member qualified (its cart untouched for 15 minutes), recorded with its
-- entry, so `cadence advise` can measure how long routing took to reach it.
{{ config(channels=['routing'], key='customer_id', tags=['cart'], event_time='qualified_at') }}

with carts as (

    select * from {{ ref('stg_carts') }}

),

customers as (

    select * from {{ ref('stg_customers') }}

),

open_carts as (

    -- untouched for at least 15 minutes (still shopping before that), at most 2 hours
    select *
    from carts
    where not checked_out
      and updated_at <= timestamptz '{{ run_started_at }}' - interval 15 minute
      and updated_at >  timestamptz '{{ run_started_at }}' - interval 120 minute

),

latest_open_cart as (

    -- a customer's most recent open cart, unless they checked out another cart after it
    select open_carts.*
    from open_carts
    where not exists (
        select 1
        from carts as later
        where later.customer_id = open_carts.customer_id
          and later.checked_out
          and later.updated_at > open_carts.updated_at
    )
    qualify row_number() over (partition by customer_id order by updated_at desc, cart_id desc) = 1

)

select
    latest_open_cart.customer_id,
    customers.first_name,
    customers.email,
    latest_open_cart.cart_id,
    latest_open_cart.item_count,
    latest_open_cart.cart_value,
    latest_open_cart.updated_at as abandoned_at,
    latest_open_cart.updated_at + interval 15 minute as qualified_at,
    date_diff('minute', latest_open_cart.updated_at, timestamptz '{{ run_started_at }}') as minutes_since_abandoned
from latest_open_cart
inner join customers using (customer_id)
