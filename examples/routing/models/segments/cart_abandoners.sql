-- Every abandoned cart, for the general call queue. 10% of customers are held out (a control
-- group that shows whether the calls lift checkouts): recorded, never sent to the channel.
{{ config(
    channels=['routing'],
    key='customer_id',
    tags=['cart'],
    holdout={'percent': 10, 'salt': 'routing-2026'},
) }}

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
