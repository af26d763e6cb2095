{{ config(channels=['email'], key='customer_id') }}
select c.customer_id, c.email
from {{ ref('stg_customers') }} c
join {{ ref('customer_totals') }} t using (customer_id)
where t.last_order_at < timestamp '2025-10-01'
