{#-
    Usage over D's three windows by one pass of RANGE window frames over one row per
    customer per day (its usage days and its as-of dates): the cost is ~ customers x
    (dates + 89) rows, each dearer than a GROUP BY row. The cheaper of the two
    computations for many dates (the history bootstrap); int_usage_windowed picks it.
    One row per active customer and as-of date; a window without usage gives null
    (int_usage_windowed fills the defaults).
-#}

with

active_customers as (

    select
        as_of_date,
        customer_id
    from {{ ref('int_customers_snapshotted') }}

),

usage_days as (

    {{ usage_days_in_windows() }}

),

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
        is_as_of_marker,
        cast('1970-01-01' as date) + day_number as as_of_date,
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

final as (

    select
        as_of_date,
        customer_id,
        calls_7d,
        calls_30d,
        calls_90d,
        data_gb_7d,
        data_gb_30d,
        data_gb_90d,
        logins_7d,
        logins_30d,
        logins_90d,
        session_minutes_30d,
        usage_days_7d,
        usage_days_30d,
        active_days_7d,
        active_days_30d,
        features_used_sum_7d,
        features_used_sum_30d,
        features_used_max_30d,
        days_since_last_login
    from daily_rows_framed
    where is_as_of_marker = 1

)

select * from final
