{#-
    Usage over D's three windows by a GROUP BY per as-of date D: each date is joined to
    its 90 days of usage, so the cost is ~ dates x customers x 90 rows. The cheaper of the
    two computations for a few dates (the nightly); int_usage_windowed picks it.
    One row per as-of date and customer with usage in (D-90, D]; a window without usage
    gives null (int_usage_windowed fills the defaults).
-#}

with

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

usage_in_windows as (

    -- Each usage day falls in exactly one of three disjoint slices of D's 90 days:
    -- (D-7, D], (D-30, D-7] or (D-90, D-30]. Aggregating per slice first and then adding
    -- slices up is about twice as fast as one FILTER clause per window and feature.
    select
        as_of_dates.as_of_date,
        usage_days.customer_id,
        usage_days.calls,
        usage_days.data_gb,
        usage_days.logins,
        usage_days.session_minutes,
        usage_days.features_used,
        case
            when usage_days.usage_date > as_of_dates.as_of_date - 7 then 7
            when usage_days.usage_date > as_of_dates.as_of_date - 30 then 30
            else 90
        end as window_slice,
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
