{{ config(channels=['web']) }}
select 42 as answer
