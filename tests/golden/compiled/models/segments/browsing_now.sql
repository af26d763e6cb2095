-- Logged-in customers who viewed a page in the last 15 minutes, with what they looked at last:
-- the web shop personalizes their next page. Refreshed every 15 minutes.


with recent_views as (

    select *
    from "main"."stg_page_views"
    where customer_id is not null
      and viewed_at > timestamptz '2026-06-01 05:00:00+02:00' - interval 15 minute

)

select
    customer_id,
    count(*) as views_last_15_minutes,
    count(*) filter (where page_type = 'product') as product_views_last_15_minutes,
    max(viewed_at) as last_seen_at,
    arg_max(url, viewed_at) as last_url,
    arg_max(page_type, viewed_at) as last_page_type
from recent_views
group by customer_id
