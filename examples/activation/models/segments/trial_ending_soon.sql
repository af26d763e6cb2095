-- Users whose free trial ends in the next var('trial_warning_hours') hours, with how engaged they
-- were: the push reminds them before the first charge. The segment refreshes every 10 minutes;
-- engagement_scores has its own hourly cadence, so the score may be up to an hour old.
{{ config(channels=['push'], key='user_id', tags=['conversion']) }}

select
    users.user_id,
    users.first_name,
    users.platform,
    subscription.ends_at as trial_ends_at,
    date_diff('hour', timestamptz '{{ run_started_at }}', subscription.ends_at) as hours_left,
    scores.engagement_score
from {{ ref('current_subscription') }} as subscription
inner join {{ ref('stg_users') }} as users using (user_id)
left join {{ ref('engagement_scores') }} as scores using (user_id)
where subscription.status = 'trialing'
  and subscription.ends_at >  timestamptz '{{ run_started_at }}'
  and subscription.ends_at <= timestamptz '{{ run_started_at }}' + interval {{ var('trial_warning_hours') }} hour
  and users.push_opt_in
