select
    event_id,
    user_id,
    event_type,
    cast(occurred_at as timestamptz) as occurred_at,
    cast(loaded_at as timestamptz) as loaded_at
from {{ source('app', 'events') }}
