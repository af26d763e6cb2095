{{ config(cadence='on demand') }}
select customer_id from {{ ref('stg_customers') }} where country = 'DE'
