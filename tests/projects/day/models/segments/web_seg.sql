{{ config(channels=['web']) }}
select customer_id from {{ ref('stg_events') }}
