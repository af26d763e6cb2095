-- Every member of a segment that feeds the email channel needs an address to send to.
-- A singular test: it returns the failing rows, so an empty result passes.

select 'high_value' as segment, customer_id
from {{ ref('high_value') }}
where email is null or email not like '%@%'

union all

select 'lapsed' as segment, customer_id
from {{ ref('lapsed') }}
where email is null or email not like '%@%'
