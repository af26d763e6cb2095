{{ config(materialized='view') }}
select customer_id, name, email, updated_at from {{ ref('customers') }}
