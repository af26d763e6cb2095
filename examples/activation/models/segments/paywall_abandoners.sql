-- Users who looked at the paywall in the last var('paywall_window_minutes') minutes and did not
-- subscribe: a push with a first-month offer. Reads the events view directly, so every 10-minute
-- tick sees the events loaded so far.
{{ config(channels=['push'], key='user_id', tags=['conversion']) }}

with paywall_views as (

    select user_id, max(occurred_at) as last_paywall_view_at
    from {{ ref('stg_events') }}
    where event_type = 'paywall_view'
      and occurred_at >  timestamptz '{{ run_started_at }}' - interval {{ var('paywall_window_minutes') }} minute
      and occurred_at <= timestamptz '{{ run_started_at }}'
    group by user_id

)

select
    users.user_id,
    users.first_name,
    users.platform,
    paywall_views.last_paywall_view_at,
    coalesce(subscription.status, 'free') as subscription_status
from paywall_views
inner join {{ ref('stg_users') }} as users using (user_id)
left join {{ ref('current_subscription') }} as subscription using (user_id)
where users.push_opt_in
  and not coalesce(subscription.is_paying, false)
