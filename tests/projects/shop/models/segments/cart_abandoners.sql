{{ config(channels=['routing'], key='customer_id') }}
select distinct customer_id
from {{ ref('stg_page_views') }}
where url = '/cart'
