select * from {{ ref('high_value') }} where email is null
