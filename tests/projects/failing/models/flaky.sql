{{ config(channels=['web'], on_error='continue') }}
select 1 as id
