-- Customers whose lifetime spend on kept orders reaches var('high_value_threshold') (EUR):
-- VIP emails, and a seed audience for lookalike ads. Both channels match on email, so customers
-- without one are left out.


with customers as (

    select * from "main"."stg_customers"

),

orders as (

    select * from "main"."stg_orders"

),

lifetime as (

    select
        customer_id,
        count(*) as orders,
        sum(amount) as lifetime_spend,
        min(ordered_at) as first_order_at,
        max(ordered_at) as last_order_at
    from orders
    where status <> 'returned'
    group by customer_id

)

select
    customers.customer_id,
    customers.first_name,
    customers.email,
    customers.country,
    lifetime.orders,
    lifetime.lifetime_spend,
    lifetime.first_order_at,
    lifetime.last_order_at
from customers
inner join lifetime using (customer_id)
where lifetime.lifetime_spend >= 500
  and customers.email is not null
