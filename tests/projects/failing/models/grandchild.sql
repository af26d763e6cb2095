{{ config(channels=['web']) }}
select * from {{ ref('child') }}
