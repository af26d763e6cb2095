-- One row per customer, cleaned up from the shop's customer table (here: seeds/customers.csv).
-- A view (the staging folder default): always current, never rebuilt on a schedule.

with source as (

    select * from "main"."customers"

)

select
    customer_id,
    first_name,
    last_name,
    nullif(lower(trim(email)), '') as email,
    upper(country) as country,
    coalesce(marketing_opt_in, false) as marketing_opt_in
from source
