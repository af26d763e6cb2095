-- Users on the free tier who used the app a lot this week: the weekday CRM email pitches the
-- annual plan to them.
{{ config(channels=['crm'], key='user_id', tags=['marketing']) }}

select
    users.user_id,
    users.email,
    users.first_name,
    scores.engagement_score,
    scores.active_days_7d,
    scores.last_active_at
from {{ ref('stg_users') }} as users
inner join {{ ref('engagement_scores') }} as scores using (user_id)
left join {{ ref('current_subscription') }} as subscription using (user_id)
where subscription.user_id is null               -- never started a trial
  and users.email_opt_in
  and scores.engagement_score >= 30
