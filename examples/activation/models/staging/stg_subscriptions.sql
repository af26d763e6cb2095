select
    subscription_id,
    user_id,
    plan,                                            -- trial, monthly, annual
    status,                                          -- trialing, converted, active, canceled
    cast(started_at as timestamptz) as started_at,
    cast(ends_at as timestamptz) as ends_at,         -- end of the trial or of the paid period
    cast(canceled_at as timestamptz) as canceled_at
from {{ source('app', 'subscriptions') }}
