select customer_id, name, zip, signed_up, active, score
from {{ ref('customers') }}
