{#-
    The as-of date spine of this run: the days in [as_of_start, as_of_end] whose drops of
    all six raw tables are loaded. A day that is not fully loaded gets no feature rows (and
    tests/assert_as_of_dates_are_loaded.sql fails the build before any mart is written).
-#}
{%- set raw_tables = [
    'customers', 'usage_daily', 'invoices', 'payments', 'support_tickets', 'churn_events'
] -%}

with

loaded_drops as (

    select * from {{ ref('stg_raw__loaded_drops') }}

),

fully_loaded_days as (

    select drop_date as as_of_date
    from loaded_drops
    where
        drop_date between {{ as_of_start() }} and {{ as_of_end() }}
        and table_name in (
            {%- for table in raw_tables %}
                '{{ table }}'{{ ',' if not loop.last }}
            {%- endfor %}
        )
    group by drop_date
    having count(distinct table_name) = {{ raw_tables | length }}

),

final as (

    select as_of_date from fully_loaded_days

)

select * from final
