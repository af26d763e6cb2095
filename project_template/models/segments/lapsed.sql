-- Customers who have ordered before but not in the last var('lapsed_days') days, and agreed to
-- marketing: the win-back email. Refreshed daily for the 06:00 send. A stable 10% of them are held
-- out (never emailed, recorded in _cadence.delivered) to measure what the win-back email does.
{{ config(channels=['email'], key='customer_id', holdout={'percent': 10, 'salt': 'winback_2026'}) }}

with customers as (

    select * from {{ ref('stg_customers') }}

),

last_orders as (

    select
        customer_id,
        count(*) as orders,
        max(ordered_at) as last_order_at
    from {{ ref('stg_orders') }}
    group by customer_id

)

select
    customers.customer_id,
    customers.first_name,
    customers.email,
    last_orders.orders,
    last_orders.last_order_at,
    date_diff('day', last_orders.last_order_at, timestamptz '{{ run_started_at }}') as days_since_last_order
from customers
inner join last_orders using (customer_id)
where last_orders.last_order_at < timestamptz '{{ run_started_at }}' - interval {{ var('lapsed_days') }} day
  and customers.email is not null
  and customers.marketing_opt_in
