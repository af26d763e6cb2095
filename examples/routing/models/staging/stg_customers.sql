-- One row per customer with what the service team needs to call them back.

select
    customer_id,
    first_name,
    nullif(trim(phone), '') as phone,
    lower(tier) as tier
from {{ ref('customers') }}
