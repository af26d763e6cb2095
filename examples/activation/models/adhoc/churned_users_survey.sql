-- Everyone who ever cancelled a paid plan, with their tenure, for a one-off churn survey.
-- `cadence: on demand` means it is never due: `cadence run --due` leaves it alone, and it is
-- built only when selected, e.g. `cadence run -s churned_users_survey` or `-s tag:adhoc`.
{{ config(cadence='on demand', key='user_id', tags=['adhoc']) }}

with paid as (

    select
        user_id,
        min(started_at) as first_paid_at,
        max(ends_at) as last_paid_until,
        count(*) as paid_periods
    from {{ ref('stg_subscriptions') }}
    where plan <> 'trial'
    group by user_id

)

select
    users.user_id,
    users.email,
    users.first_name,
    paid.first_paid_at,
    paid.last_paid_until,
    date_diff('day', paid.first_paid_at, paid.last_paid_until) as tenure_days
from {{ ref('current_subscription') }} as subscription
inner join paid using (user_id)
inner join {{ ref('stg_users') }} as users using (user_id)
where subscription.status = 'canceled'
