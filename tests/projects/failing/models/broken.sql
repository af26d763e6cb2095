{{ config(channels=['web']) }}
select id, no_such_column
from {{ ref('base') }}
