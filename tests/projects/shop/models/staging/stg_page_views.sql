select customer_id, url, cast(viewed_at as timestamp) as viewed_at
from {{ source('web', 'page_views') }}
