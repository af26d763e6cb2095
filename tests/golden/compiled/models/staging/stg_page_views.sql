-- Page views of logged-in and anonymous visitors. Demo data is relative to the run (see
-- stg_orders for why this is a table); in production this is your event stream.


with source as (

    select * from "main"."page_views"

)

select
    view_id,
    customer_id,                 -- null for anonymous visitors
    timestamptz '2026-06-01 05:00:00+02:00' - minutes_ago * interval 1 minute as viewed_at,
    page_type,
    url
from source
