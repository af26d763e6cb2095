-- Each customer's most recent cart left 15 to 120 minutes ago without checking out (still
-- shopping before 15 minutes, gone cold after two hours), unless they checked out later, with
-- what the service team needs to call back.

with carts as (

    select * from {{ ref('stg_carts') }}

),

left_behind as (

    select *
    from carts
    where not checked_out
      and updated_at <= timestamptz '{{ run_started_at }}' - interval 15 minute
      and updated_at >  timestamptz '{{ run_started_at }}' - interval 120 minute

)

select
    left_behind.customer_id,
    customers.first_name,
    customers.phone,
    customers.tier,
    left_behind.cart_id,
    left_behind.item_count,
    left_behind.cart_value,
    left_behind.updated_at as abandoned_at,
    date_diff('minute', left_behind.updated_at, timestamptz '{{ run_started_at }}')
        as minutes_since_abandoned
from left_behind
inner join {{ ref('stg_customers') }} as customers using (customer_id)
where not exists (
    select 1
    from carts as later
    where later.customer_id = left_behind.customer_id
      and later.checked_out
      and later.updated_at > left_behind.updated_at
)
qualify row_number() over (
    partition by left_behind.customer_id order by left_behind.updated_at desc, left_behind.cart_id desc
) = 1
