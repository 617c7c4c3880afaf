{#-
    Usage over D's three windows by a GROUP BY per as-of date D: each date is joined to
    its 90 days of usage, so the cost is ~ dates x customers x 90 rows. The cheaper of the
    two computations for a few dates (the nightly); int_usage_windowed picks it.
    One row per as-of date and customer with usage in (D-90, D]; a window without usage
    gives null (int_usage_windowed fills the defaults).
    The usage rows meet their as-of dates by an equi-join on the day (window_days: each
    date's 90 days, with the slice each falls in), not by a date range: PostgreSQL
    estimates a range join at a ninth of its rows and then planned the aggregation of
    the night's usage (45M rows at 500,000 customers) as if it were 5M, serially; on the
    day it counts them right and aggregates in its parallel workers. Both engines hash
    the few window days instead of testing a range on every usage row.
-#}

with

as_of_dates as (

    select as_of_date from {{ ref('int_as_of_dates') }}

),

day_offsets as (

    -- 0 (D itself) to 89 (D-89): the 90 days of (D-90, D].
    select window_day_offsets.day_offset
    from (
        values
        {%- for offset in range(90) %}
            ({{ offset }}){{ ',' if not loop.last }}
        {%- endfor %}
    ) as window_day_offsets (day_offset)

),

window_slices as (

    -- The three disjoint slices of D's 90 days, by days before D: (D-7, D],
    -- (D-30, D-7] and (D-90, D-30]. Three rows of a list, so PostgreSQL counts three
    -- slices per customer when it sizes the aggregation below (and hashes it).
    select
        slices.window_slice,
        slices.first_day_offset,
        slices.last_day_offset
    from (
        values (7, 0, 6), (30, 7, 29), (90, 30, 89)
    ) as slices (window_slice, first_day_offset, last_day_offset)

),

window_days as (

    -- Each as-of date's 90 days, each in exactly one slice.
    select
        as_of_dates.as_of_date,
        day_offsets.day_offset,
        window_slices.window_slice,
        as_of_dates.as_of_date - day_offsets.day_offset as usage_date
    from as_of_dates
    cross join day_offsets
    inner join window_slices
        on
            day_offsets.day_offset >= window_slices.first_day_offset
            and day_offsets.day_offset <= window_slices.last_day_offset

),

usage_days as (

    -- Every usage row's usage_date equals its drop day (tested on staging), so a row
    -- dated on or before D was known on D.
    select
        customer_id,
        usage_date,
        calls,
        data_gb,
        logins,
        session_minutes,
        features_used
    from {{ ref('stg_raw__usage_days') }}
    where
        usage_date > {{ as_of_start(-90) }}
        and usage_date <= {{ as_of_end() }}
        and drop_date <= {{ as_of_end() }}

),

usage_in_windows as (

    -- Aggregating per slice first and then adding slices up is about twice as fast as
    -- one FILTER clause per window and feature.
    select
        window_days.as_of_date,
        usage_days.customer_id,
        usage_days.calls,
        usage_days.data_gb,
        usage_days.logins,
        usage_days.session_minutes,
        usage_days.features_used,
        window_days.window_slice,
        case when usage_days.logins > 0 then 1 else 0 end as is_login_day,
        case when usage_days.logins > 0 then window_days.day_offset end as days_since_login
    from window_days
    inner join usage_days
        on usage_days.usage_date = window_days.usage_date

),

usage_slices as (

    select
        as_of_date,
        customer_id,
        window_slice,
        sum(calls) as calls,
        sum(data_gb) as data_gb,
        sum(logins) as logins,
        sum(session_minutes) as session_minutes,
        count(*) as usage_days,
        sum(is_login_day) as active_days,
        sum(features_used) as features_used_sum,
        max(features_used) as features_used_max,
        min(days_since_login) as days_since_last_login
    from usage_in_windows
    group by as_of_date, customer_id, window_slice

),

final as (

    select
        as_of_date,
        customer_id,
        sum(calls) filter (where window_slice = 7) as calls_7d,
        sum(calls) filter (where window_slice <= 30) as calls_30d,
        sum(calls) as calls_90d,
        sum(data_gb) filter (where window_slice = 7) as data_gb_7d,
        sum(data_gb) filter (where window_slice <= 30) as data_gb_30d,
        sum(data_gb) as data_gb_90d,
        sum(logins) filter (where window_slice = 7) as logins_7d,
        sum(logins) filter (where window_slice <= 30) as logins_30d,
        sum(logins) as logins_90d,
        sum(session_minutes) filter (where window_slice <= 30) as session_minutes_30d,
        sum(usage_days) filter (where window_slice = 7) as usage_days_7d,
        sum(usage_days) filter (where window_slice <= 30) as usage_days_30d,
        sum(active_days) filter (where window_slice = 7) as active_days_7d,
        sum(active_days) filter (where window_slice <= 30) as active_days_30d,
        sum(features_used_sum) filter (where window_slice = 7) as features_used_sum_7d,
        sum(features_used_sum) filter (where window_slice <= 30) as features_used_sum_30d,
        max(features_used_max) filter (where window_slice <= 30) as features_used_max_30d,
        min(days_since_last_login) as days_since_last_login
    from usage_slices
    group by as_of_date, customer_id

)

select * from final
