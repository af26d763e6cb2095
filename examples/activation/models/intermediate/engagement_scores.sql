-- A 0-100 engagement score per user over the last 7 days. Scoring is the expensive step here, so it
-- gets an explicit cadence of its own: it is rebuilt hourly, not at the 10-minute pace of the
-- push segments that read it. They use its latest build, and `cadence lint` notes that they cannot
-- be fresher than it.
{{ config(materialized='table', cadence='hourly', tags=['scoring']) }}

with events as (

    select *
    from {{ ref('stg_events') }}
    where occurred_at >  timestamptz '{{ run_started_at }}' - interval 7 day
      and occurred_at <= timestamptz '{{ run_started_at }}'

),

per_user as (

    select
        user_id,
        count(*) filter (where event_type = 'app_open') as opens_7d,
        count(*) filter (where event_type = 'session_complete') as sessions_7d,
        count(distinct cast(occurred_at as date)) as active_days_7d,
        max(occurred_at) as last_active_at
    from events
    group by user_id

)

select
    users.user_id,
    coalesce(per_user.opens_7d, 0) as opens_7d,
    coalesce(per_user.sessions_7d, 0) as sessions_7d,
    coalesce(per_user.active_days_7d, 0) as active_days_7d,
    per_user.last_active_at,
    least(100, 10 * coalesce(per_user.active_days_7d, 0) + 5 * coalesce(per_user.sessions_7d, 0)) as engagement_score,
    timestamptz '{{ run_started_at }}' as scored_at
from {{ ref('stg_users') }} as users
left join per_user using (user_id)
