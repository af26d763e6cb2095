{{ config(materialized='table') }}
select
    o.order_id,
    o.customer_id,
    c.name as customer_name,
    {{ cents_to_dollars('o.amount_cents') }} as amount,
    o.status,
    o.amount_cents >= {{ var('big_order_cents', 2000) }} as is_big
from {{ ref('stg_orders') }} o
left join {{ ref('stg_customers') }} c on c.customer_id = o.customer_id
