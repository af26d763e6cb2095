select
    order_id,
    customer_id,
    amount_cents,
    {{ cents_to_dollars('amount_cents') }} as amount,
    status,
    {{ minipkg.label('status') }} as status_label,
    ordered_at,
    {{ dbt.dateadd('day', 7, 'ordered_at') }} as due_at,
    {{ dbt.date_trunc('month', 'ordered_at') }} as order_month,
    {{ dbt.datediff("cast('2024-01-01' as date)", 'ordered_at', 'day') }} as days_in_year,
    {{ dbt.concat(["'o-'", 'order_id']) }} as order_key,
    cast(null as {{ dbt.type_string() }}) as note
from {{ ref('orders') }}
where amount_cents >= {{ var('min_amount_cents', 0) }}
