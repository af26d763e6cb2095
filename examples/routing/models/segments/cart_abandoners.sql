-- Every abandoned cart, for the general call queue. 10% of customers are held out (a control
-- group that shows whether the calls lift checkouts): recorded, never sent to the channel.
{{ config(
    channels=['routing'],
    key='customer_id',
    tags=['cart'],
    holdout={'percent': 10, 'salt': 'routing-holdout'},
) }}

select *
from {{ ref('open_carts') }}
