{{ config(channels=['email', 'ads'], key='customer_id', tags=['vip']) }}
select c.customer_id, c.email, t.lifetime_eur
from {{ ref('stg_customers') }} c
join {{ ref('customer_totals') }} t using (customer_id)
where t.lifetime_eur >= {{ var('high_value_threshold') }}
