{#-
    Rolling usage per active customer per as-of date D over the windows (D-7, D],
    (D-30, D] and (D-90, D]. Two computations of the same rows, picked by
    usage_window_strategy() from the number of as-of dates in the run:
      group_by - join each as-of date to its 90 days of usage and aggregate (per slice,
                 then per window); cost ~ dates x customers x 90 rows (the nightly).
      window   - one pass of RANGE window frames over one row per customer per day (its
                 usage days and its as-of dates); cost ~ customers x (dates + 89) rows,
                 each dearer than a GROUP BY row (the bootstrap: hundreds of dates).
    Float sums are rounded so that both paths (and reruns) give identical rows.
-#}
{%- set strategy = usage_window_strategy() -%}

with

active_customers as (

    select as_of_date, customer_id from {{ ref('int_customers_snapshotted') }}

),

as_of_dates as (

    select as_of_date from {{ ref('int_as_of_dates') }}

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

{% if strategy == 'group_by' %}

usage_in_windows as (

    -- Each usage day falls in exactly one of three disjoint slices of D's 90 days:
    -- (D-7, D], (D-30, D-7] or (D-90, D-30]. Aggregating per slice first and then adding
    -- slices up is about twice as fast as one FILTER clause per window and feature.
    select
        as_of_dates.as_of_date,
        usage_days.customer_id,
        case
            when usage_days.usage_date > as_of_dates.as_of_date - 7 then 7
            when usage_days.usage_date > as_of_dates.as_of_date - 30 then 30
            else 90
        end as window_slice,
        usage_days.calls,
        usage_days.data_gb,
        usage_days.logins,
        usage_days.session_minutes,
        usage_days.features_used,
        case when usage_days.logins > 0 then 1 else 0 end as is_login_day,
        case
            when usage_days.logins > 0 then as_of_dates.as_of_date - usage_days.usage_date
        end as days_since_login
    from as_of_dates
    inner join usage_days
        on
            usage_days.usage_date > as_of_dates.as_of_date - 90
            and usage_days.usage_date <= as_of_dates.as_of_date

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

usage_windowed as (

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

),

{% else %}

usage_and_marker_rows as (

    -- The customer's usage days, plus one marker row per (customer, as-of date) at which
    -- the frames are read: a customer without usage on D still gets D's windows.
    select
        customer_id,
        {{ day_number('usage_date') }} as day_number,
        calls,
        data_gb,
        logins,
        session_minutes,
        features_used,
        1 as usage_rows,
        case when logins > 0 then 1 else 0 end as login_rows,
        0 as as_of_markers
    from usage_days

    union all

    select
        customer_id,
        {{ day_number('as_of_date') }} as day_number,
        null as calls,
        null as data_gb,
        null as logins,
        null as session_minutes,
        null as features_used,
        0 as usage_rows,
        0 as login_rows,
        1 as as_of_markers
    from active_customers

),

daily_rows as (

    -- One row per customer per day: the window pass costs per row, and markers almost
    -- always fall on a usage day.
    select
        customer_id,
        day_number,
        sum(calls) as calls,
        sum(data_gb) as data_gb,
        sum(logins) as logins,
        sum(session_minutes) as session_minutes,
        sum(features_used) as features_used_sum,
        max(features_used) as features_used_max,
        sum(usage_rows) as usage_rows,
        sum(login_rows) as login_rows,
        case when sum(login_rows) > 0 then day_number end as login_day_number,
        max(as_of_markers) as is_as_of_marker
    from usage_and_marker_rows
    group by customer_id, day_number

),

daily_rows_framed as (

    -- RANGE frames over whole days: "6 preceding" on the day number is (D-7, D].
    select
        customer_id,
        day_number,
        is_as_of_marker,
        sum(calls) over last_7_days as calls_7d,
        sum(calls) over last_30_days as calls_30d,
        sum(calls) over last_90_days as calls_90d,
        sum(data_gb) over last_7_days as data_gb_7d,
        sum(data_gb) over last_30_days as data_gb_30d,
        sum(data_gb) over last_90_days as data_gb_90d,
        sum(logins) over last_7_days as logins_7d,
        sum(logins) over last_30_days as logins_30d,
        sum(logins) over last_90_days as logins_90d,
        sum(session_minutes) over last_30_days as session_minutes_30d,
        sum(usage_rows) over last_7_days as usage_days_7d,
        sum(usage_rows) over last_30_days as usage_days_30d,
        sum(login_rows) over last_7_days as active_days_7d,
        sum(login_rows) over last_30_days as active_days_30d,
        sum(features_used_sum) over last_7_days as features_used_sum_7d,
        sum(features_used_sum) over last_30_days as features_used_sum_30d,
        max(features_used_max) over last_30_days as features_used_max_30d,
        day_number - max(login_day_number) over last_90_days as days_since_last_login
    from daily_rows
    window
        last_7_days as (
            partition by customer_id order by day_number
            range between 6 preceding and current row
        ),
        last_30_days as (
            partition by customer_id order by day_number
            range between 29 preceding and current row
        ),
        last_90_days as (
            partition by customer_id order by day_number
            range between 89 preceding and current row
        )

),

usage_windowed as (

    select
        cast('1970-01-01' as date) + daily_rows_framed.day_number as as_of_date,
        daily_rows_framed.*
    from daily_rows_framed
    where daily_rows_framed.is_as_of_marker = 1

),

{% endif %}

final as (

    select
        active_customers.as_of_date,
        active_customers.customer_id,
        cast(coalesce(usage_windowed.calls_7d, 0) as integer) as calls_7d,
        cast(coalesce(usage_windowed.calls_30d, 0) as integer) as calls_30d,
        cast(coalesce(usage_windowed.calls_90d, 0) as integer) as calls_90d,
        {{ round_float('coalesce(usage_windowed.data_gb_7d, 0)') }} as data_gb_7d,
        {{ round_float('coalesce(usage_windowed.data_gb_30d, 0)') }} as data_gb_30d,
        {{ round_float('coalesce(usage_windowed.data_gb_90d, 0)') }} as data_gb_90d,
        cast(coalesce(usage_windowed.logins_7d, 0) as integer) as logins_7d,
        cast(coalesce(usage_windowed.logins_30d, 0) as integer) as logins_30d,
        cast(coalesce(usage_windowed.logins_90d, 0) as integer) as logins_90d,
        {{ round_float('coalesce(usage_windowed.session_minutes_30d, 0)') }} as session_minutes_30d,
        cast(coalesce(usage_windowed.usage_days_7d, 0) as integer) as usage_days_7d,
        cast(coalesce(usage_windowed.usage_days_30d, 0) as integer) as usage_days_30d,
        cast(coalesce(usage_windowed.active_days_7d, 0) as integer) as active_days_7d,
        cast(coalesce(usage_windowed.active_days_30d, 0) as integer) as active_days_30d,
        cast(coalesce(usage_windowed.features_used_sum_7d, 0) as integer) as features_used_sum_7d,
        cast(coalesce(usage_windowed.features_used_sum_30d, 0) as integer) as features_used_sum_30d,
        cast(coalesce(usage_windowed.features_used_max_30d, 0) as integer) as features_used_max_30d,
        -- No login in the 90-day window: capped at 90.
        cast(coalesce(usage_windowed.days_since_last_login, 90) as integer) as days_since_last_login
    from active_customers
    left join usage_windowed
        on
            active_customers.as_of_date = usage_windowed.as_of_date
            and active_customers.customer_id = usage_windowed.customer_id

)

select * from final
