-- Demo data is stored relative to the run (seeds/orders.csv has `minutes_ago`), so the segments
-- have members whenever you try the project. The timestamp therefore depends on the run: this
-- model is a table, rebuilt at the pace of the segments that read it (as a view it would be
-- recreated before each of their builds). In production, select from your real order table
-- (a source) instead.


with source as (

    select * from "main"."orders"

)

select
    order_id,
    customer_id,
    timestamptz '2026-06-01 05:00:00+02:00' - minutes_ago * interval 1 minute as ordered_at,
    lower(status) as status,
    cast(amount_cents / 100 as decimal(12, 2)) as amount
from source
