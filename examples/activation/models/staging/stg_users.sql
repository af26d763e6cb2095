-- A view over the source: always current, never due by ticks.
select
    user_id,
    lower(email) as email,
    first_name,
    platform,
    push_opt_in,
    email_opt_in,
    cast(signed_up_at as timestamptz) as signed_up_at
from {{ source('app', 'users') }}
