{{ config(alias='dim_customer_totals') }}
select
    c.customer_id,
    c.name,
    count(o.order_id) as n_orders,
    coalesce(sum(o.amount), 0) as total
from {{ ref('stg_customers') }} c
left join {{ ref('stg_orders') }} o using (customer_id)
group by 1, 2
