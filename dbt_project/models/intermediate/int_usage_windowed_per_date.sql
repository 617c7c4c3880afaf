{#-
    Usage over D's three windows by a GROUP BY per as-of date D. The cheaper of the two
    computations for a few dates (the nightly); int_usage_windowed picks it.
    One row per as-of date and customer with usage in (D-90, D]; a window without usage
    gives null sums and zero day counts (int_usage_windowed fills the defaults).
    - A run of one as-of date D (the nightly) reads its windows' whole tiles
      (int_usage_tiles, built just before for D's window) and the days no tile covers:
      about 13 rows a customer for the three windows at the default tile sizes, instead
      of 90 days (usage_window_plan, macros/usage.sql).
    - Over several dates each date is joined to its 90 days of usage, so the cost is
      ~ dates x customers x 90 rows. The usage rows meet their as-of dates by an
      equi-join on the day (window_days: each date's 90 days, by their offset from D),
      not by a range: PostgreSQL estimates a range join at a ninth of its rows and then
      planned the aggregation of 45M rows (500,000 customers) as if it were 5M,
      serially; on the day it counts them right and aggregates in its parallel workers.
-#}

{%- set one_date = as_of_bounds()['days'] == 1 -%}
{#- One as-of date D (the nightly): the GROUP BY is by customer alone (see usage_rows). -#}
{%- set group_keys = 'customer_id' if one_date else 'as_of_date, customer_id' -%}
{#- Taken on every render, like int_usage_windowed's refs: dbt records parents at parse time. -#}
{%- set usage_tiles = ref('int_usage_tiles') -%}
{%- set plan = usage_window_plan(as_of_bounds()['end']) %}

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

-- A run of one as-of date does without window_days (see usage_rows).
window_days as (  -- noqa: ST03

    -- Each as-of date's 90 days, by how many days before D they are.
    select
        as_of_dates.as_of_date,
        day_offsets.day_offset,
        as_of_dates.as_of_date - day_offsets.day_offset as usage_date
    from as_of_dates
    cross join day_offsets

),

-- A run of one as-of date does without usage_days too: it reads only the days its
-- tiles do not cover (see usage_rows).
usage_days as (  -- noqa: ST03

    {{ usage_days_in_windows() }}

),

usage_rows as (

    -- Rows shaped like a tile (int_usage_tiles: sums over some days, a day count, the
    -- last login), each flagged with the windows it counts in (in_7d: (D-7, D], in_30d:
    -- (D-30, D], in_90d: (D-90, D]), so one aggregation below serves both branches.
    {% if one_date -%}
        -- One as-of date D (the nightly): its windows as whole tiles plus the days no
        -- tile covers (usage_window_plan); each day of a window counts once, from a tile
        -- or from its row. D is put on the rows after the GROUP BY, from int_as_of_dates
        -- (no row when D is not an as-of date).
        {%- set row_days = plan[7]['days'] + plan[30]['days'] + plan[90]['days'] %}
        select
            customer_id,
            {{ on_days('usage_date', plan[7]['days']) }} as in_7d,
            {{ on_days('usage_date', plan[30]['days']) }} as in_30d,
            {{ on_days('usage_date', plan[90]['days']) }} as in_90d,
            calls,
            data_gb,
            logins,
            session_minutes,
            1 as usage_days,
            case when logins > 0 then 1 else 0 end as active_days,
            features_used as features_used_sum,
            features_used as features_used_max,
            case when logins > 0 then usage_date end as last_login_date
        from {{ ref('stg_raw__usage_days') }}
        -- usage_date = drop_date (see usage_days_in_windows); on PostgreSQL the
        -- drop_date ranges are read by index.
        where
            {{ on_days('usage_date', row_days) }}
            and {{ on_days('drop_date', row_days) }}

        union all

        -- The tiles' counts are bigint; as integers (like the rows' own) PostgreSQL
        -- sums them in a by-value 64-bit state instead of a 128-bit one allocated per
        -- group: at 500,000 customers the aggregation stays in work_mem (it spilled to
        -- disk at 256MB) and runs in parallel, 6.2-7.4 s instead of 11.3-11.5 s. A tile's
        -- sums are at most 90 days of one customer's counts.
        -- A tile may serve one window and not another (a 32-day tile of the 90-day
        -- window that straddles the 30-day window's first day): each flag is its own.
        {%- set tiles = plan[7]['tiles'] + plan[30]['tiles'] + plan[90]['tiles'] %}
        select
            customer_id,
            {{ in_tiles(plan[7]['tiles']) }} as in_7d,
            {{ in_tiles(plan[30]['tiles']) }} as in_30d,
            {{ in_tiles(plan[90]['tiles']) }} as in_90d,
            cast(calls as integer) as calls,
            data_gb,
            cast(logins as integer) as logins,
            session_minutes,
            cast(usage_days as integer) as usage_days,
            cast(active_days as integer) as active_days,
            cast(features_used_sum as integer) as features_used_sum,
            features_used_max,
            last_login_date
        from {{ usage_tiles }}
        where
            {{ in_tiles(tiles) }}
            and customer_id is not null
    {%- else -%}
        -- Several as-of dates: the usage rows meet their dates by an equi-join on the day.
        select
            window_days.as_of_date,
            usage_days.customer_id,
            window_days.day_offset < 7 as in_7d,
            window_days.day_offset < 30 as in_30d,
            true as in_90d,
            usage_days.calls,
            usage_days.data_gb,
            usage_days.logins,
            usage_days.session_minutes,
            1 as usage_days,
            case when usage_days.logins > 0 then 1 else 0 end as active_days,
            usage_days.features_used as features_used_sum,
            usage_days.features_used as features_used_max,
            case when usage_days.logins > 0 then usage_days.usage_date end as last_login_date
        from window_days
        inner join usage_days
            on usage_days.usage_date = window_days.usage_date
    {%- endif %}

),

final as (

    -- One aggregation, a CASE per window. Measured at 500,000 customers (45M rows), the
    -- whole model materialized, against aggregating per disjoint slice first and adding
    -- the slices up in a second GROUP BY: PostgreSQL 26 s against 31-34 s (the slices'
    -- 1.5M groups spilled and were gathered from every worker), DuckDB the same or
    -- slightly faster. FILTER clauses instead of CASE are as fast on PostgreSQL but a
    -- quarter slower on DuckDB.
    select
        {{ group_keys }},
        sum(case when in_7d then calls end) as calls_7d,
        sum(case when in_30d then calls end) as calls_30d,
        sum(case when in_90d then calls end) as calls_90d,
        sum(case when in_7d then data_gb end) as data_gb_7d,
        sum(case when in_30d then data_gb end) as data_gb_30d,
        sum(case when in_90d then data_gb end) as data_gb_90d,
        sum(case when in_7d then logins end) as logins_7d,
        sum(case when in_30d then logins end) as logins_30d,
        sum(case when in_90d then logins end) as logins_90d,
        sum(case when in_30d then session_minutes end) as session_minutes_30d,
        coalesce(sum(case when in_7d then usage_days end), 0) as usage_days_7d,
        coalesce(sum(case when in_30d then usage_days end), 0) as usage_days_30d,
        coalesce(sum(case when in_7d then active_days end), 0) as active_days_7d,
        coalesce(sum(case when in_30d then active_days end), 0) as active_days_30d,
        sum(case when in_7d then features_used_sum end) as features_used_sum_7d,
        sum(case when in_30d then features_used_sum end) as features_used_sum_30d,
        -- A maximum and the last login may take a day twice (from a tile and its row).
        max(case when in_30d then features_used_max end) as features_used_max_30d,
        {{ 'as_of_date' if not one_date else as_of_end() }} - max(last_login_date)
            as days_since_last_login
    from usage_rows
    group by {{ group_keys }}

),

usage_windowed as (

    {% if one_date -%}
        select
            final.*,
            as_of_dates.as_of_date
        from final
        cross join as_of_dates
    {%- else -%}
        select * from final
    {%- endif %}

)

select * from usage_windowed
