{{ config(severity='warn') }}
-- returned orders: a warning, not an error
select * from {{ ref('stg_orders') }} where status = 'returned'
