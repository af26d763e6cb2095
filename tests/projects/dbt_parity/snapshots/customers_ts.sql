{% snapshot customers_ts %}
{{ config(
    target_schema='snapshots',
    unique_key='customer_id',
    strategy='timestamp',
    updated_at='updated_at',
    invalidate_hard_deletes=True
) }}
select customer_id, name, email, updated_at from {{ ref('stg_customers') }}
{% endsnapshot %}
