-- Customers who have ordered before but not in the last var('lapsed_days') days, and agreed to
-- marketing: the win-back email. Refreshed daily for the 06:00 send. A stable 10% of them are held
-- out (never emailed, recorded in _cadence.delivered) to measure what the win-back email does.


with customers as (

    select * from "main"."stg_customers"

),

last_orders as (

    select
        customer_id,
        count(*) as orders,
        max(ordered_at) as last_order_at
    from "main"."stg_orders"
    group by customer_id

)

select
    customers.customer_id,
    customers.first_name,
    customers.email,
    last_orders.orders,
    last_orders.last_order_at,
    date_diff('day', last_orders.last_order_at, timestamptz '2026-06-01 05:00:00+02:00') as days_since_last_order
from customers
inner join last_orders using (customer_id)
where last_orders.last_order_at < timestamptz '2026-06-01 05:00:00+02:00' - interval 90 day
  and customers.email is not null
  and customers.marketing_opt_in
