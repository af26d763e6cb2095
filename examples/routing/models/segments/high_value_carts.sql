-- Abandoned carts worth a call from a senior agent: 150 EUR or more, or a gold customer.
-- First in the routing channel's priority, so these customers never also land in the
-- general queue.
{{ config(channels=['routing'], key='customer_id', tags=['cart']) }}

select
    open_carts.customer_id,
    customers.first_name,
    customers.phone,
    customers.tier,
    open_carts.cart_id,
    open_carts.cart_value,
    open_carts.minutes_since_abandoned
from {{ ref('open_carts') }} as open_carts
inner join {{ ref('stg_customers') }} as customers using (customer_id)
where open_carts.cart_value >= 150 or customers.tier = 'gold'
