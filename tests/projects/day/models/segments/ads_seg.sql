{{ config(channels=['ads']) }}
select customer_id from {{ ref('stg_customers') }}
