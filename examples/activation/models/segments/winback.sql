-- Users whose paid subscription ended in the last var('winback_days') days: the weekday CRM
-- email offers them a discount to come back.
{{ config(channels=['crm'], key='user_id', tags=['marketing']) }}

select
    users.user_id,
    users.email,
    users.first_name,
    subscription.plan as last_plan,
    subscription.ends_at as ended_at,
    date_diff('day', subscription.ends_at, timestamptz '{{ run_started_at }}') as days_since_end
from {{ ref('current_subscription') }} as subscription
inner join {{ ref('stg_users') }} as users using (user_id)
where subscription.status = 'canceled'
  and subscription.ends_at <= timestamptz '{{ run_started_at }}'
  and subscription.ends_at >  timestamptz '{{ run_started_at }}' - interval {{ var('winback_days') }} day
  and users.email_opt_in
