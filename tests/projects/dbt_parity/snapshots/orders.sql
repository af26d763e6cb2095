{% snapshot orders_check %}
{{ config(
    target_schema='snapshots',
    unique_key='order_id',
    strategy='check',
    check_cols=['status', 'amount_cents']
) }}
select order_id, customer_id, status, amount_cents from {{ ref('stg_orders') }}
{% endsnapshot %}

{% snapshot orders_all %}
{{ config(
    target_schema='snapshots',
    unique_key=['order_id', 'customer_id'],
    strategy='check',
    check_cols='all',
    hard_deletes='invalidate'
) }}
select order_id, customer_id, status from {{ ref('stg_orders') }}
{% endsnapshot %}
