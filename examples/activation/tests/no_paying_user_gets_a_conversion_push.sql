-- Nobody who currently pays may receive a "subscribe now" push. Returns the failing rows.
select 'paywall_abandoners' as segment, user_id
from {{ ref('paywall_abandoners') }}
where user_id in (select user_id from {{ ref('stg_subscriptions') }} where status = 'active')

union all

select 'trial_ending_soon' as segment, user_id
from {{ ref('trial_ending_soon') }}
where user_id in (select user_id from {{ ref('stg_subscriptions') }} where status = 'active')
