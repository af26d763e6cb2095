{{ config(channels=['routing']) }}
select customer_id from {{ ref('stg_events') }}
