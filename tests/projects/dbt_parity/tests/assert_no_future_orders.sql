select * from {{ ref('stg_orders') }} where updated_at > timestamp '2030-01-01'
