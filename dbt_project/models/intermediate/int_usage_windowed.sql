{#-
    Rolling usage per active customer per as-of date D over the windows (D-7, D],
    (D-30, D] and (D-90, D]. Two models compute the same sums at different costs, and
    usage_window_strategy() (macros/as_of.sql) picks one by the number of as-of dates in
    the run: int_usage_windowed_per_date (a GROUP BY per date: the nightly) or
    int_usage_windowed_by_frames (RANGE window frames: the bootstrap). Both are ephemeral:
    the one not picked is never computed. Float sums are rounded so that both (and
    reruns) give identical rows.
    Both refs are taken on every render: dbt records a model's parents when it parses,
    with a placeholder range that would only ever pick the first.
-#}
{{ config(pre_hook="{{ serial_usage_aggregation() }}") }}

{%- set usage_per_date = ref('int_usage_windowed_per_date') -%}
{%- set usage_by_frames = ref('int_usage_windowed_by_frames') -%}

with

active_customers as (

    select
        as_of_date,
        customer_id
    from {{ ref('int_customers_snapshotted') }}

),

usage_windowed as (

    {% if usage_window_strategy() == 'group_by' -%}
        select * from {{ usage_per_date }}
    {%- else -%}
        select * from {{ usage_by_frames }}
    {%- endif %}

),

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
        {{ round_float('coalesce(usage_windowed.session_minutes_30d, 0)') }}
            as session_minutes_30d,
        cast(coalesce(usage_windowed.usage_days_7d, 0) as integer) as usage_days_7d,
        cast(coalesce(usage_windowed.usage_days_30d, 0) as integer) as usage_days_30d,
        cast(coalesce(usage_windowed.active_days_7d, 0) as integer) as active_days_7d,
        cast(coalesce(usage_windowed.active_days_30d, 0) as integer) as active_days_30d,
        cast(
            coalesce(usage_windowed.features_used_sum_7d, 0) as integer
        ) as features_used_sum_7d,
        cast(
            coalesce(usage_windowed.features_used_sum_30d, 0) as integer
        ) as features_used_sum_30d,
        cast(
            coalesce(usage_windowed.features_used_max_30d, 0) as integer
        ) as features_used_max_30d,
        -- No login in the 90-day window: capped at 90.
        cast(
            coalesce(usage_windowed.days_since_last_login, 90) as integer
        ) as days_since_last_login
    from active_customers
    left join usage_windowed
        on
            active_customers.as_of_date = usage_windowed.as_of_date
            and active_customers.customer_id = usage_windowed.customer_id

)

select * from final
