{{ config(channels=['web'], key='customer_id') }}
select distinct customer_id
from {{ ref('stg_page_views') }}
