{{ config(materialized='view') }}
select order_id, customer_id, amount_cents, status, updated_at from {{ ref('orders') }}
