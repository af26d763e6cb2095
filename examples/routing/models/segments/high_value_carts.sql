-- Abandoned carts worth a call from a senior agent: 150 EUR or more, or a gold customer.
-- First in the routing channel's priority, so these customers never also land in the
-- general queue.
{{ config(channels=['routing'], key='customer_id', tags=['cart']) }}

select *
from {{ ref('open_carts') }}
where cart_value >= 150 or tier = 'gold'
