{#-
    Every as-of date of the run must have the drops of all six raw tables loaded. A run
    for a day that is not (yet) loaded fails here, before any mart is written, instead of
    writing features from a partial day.
-#}
{%- set bounds = as_of_bounds() -%}

with

requested_dates as (

    select {{ as_of_start() }} + cast(day_offset as integer) as as_of_date
    from generate_series(0, {{ bounds['days'] - 1 }}) as day_offsets (day_offset)

),

as_of_dates as (

    select as_of_date from {{ ref('int_as_of_dates') }}

),

final as (

    select requested_dates.as_of_date as missing_as_of_date
    from requested_dates
    left join as_of_dates
        on requested_dates.as_of_date = as_of_dates.as_of_date
    where as_of_dates.as_of_date is null

)

select * from final
