-- Page views of logged-in and anonymous visitors. Demo data is relative to the run (see
-- stg_orders for why this is a table); in production this is your event stream.
{{ config(materialized='table') }}

with source as (

    select * from {{ ref('page_views') }}

)

select
    view_id,
    customer_id,                 -- null for anonymous visitors
    timestamptz '{{ run_started_at }}' - minutes_ago * interval 1 minute as viewed_at,
    page_type,
    url
from source
