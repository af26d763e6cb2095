-- Each user's most recent subscription. Ephemeral (the intermediate folder default): it is not
-- built at all, but inlined as a CTE into every model that refs it, so it is never due and costs
-- nothing on its own.
select
    user_id,
    subscription_id,
    plan,
    status,
    started_at,
    ends_at,
    canceled_at,
    status = 'active' as is_paying
from {{ ref('stg_subscriptions') }}
qualify row_number() over (partition by user_id order by started_at desc, subscription_id desc) = 1
