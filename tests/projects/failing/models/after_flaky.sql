{{ config(channels=['web']) }}
select id from {{ ref('flaky') }}
