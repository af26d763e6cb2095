-- Demo data is stored relative to the run (seeds/orders.csv has `minutes_ago`), so the segments
-- have members whenever you try the project. The timestamp therefore depends on the run: this
-- model is a table, rebuilt at the pace of the segments that read it (as a view it would be
-- recreated before each of their builds). In production, select from your real order table
-- (a source) instead.
{{ config(materialized='table') }}

with source as (

    select * from {{ ref('orders') }}

)

select
    order_id,
    customer_id,
    timestamptz '{{ run_started_at }}' - minutes_ago * interval 1 minute as ordered_at,
    lower(status) as status,
    {{ cents_to_currency('amount_cents') }} as amount
from source
