{{ config(channels=['web']) }}
select * from {{ ref('broken') }}
