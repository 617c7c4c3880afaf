{#-
    Usage tiles (macros/usage.sql): per customer, usage summed over each block of
    usage_tile_days days, so the nightly reads a 90-day window as about a dozen tiles and
    the days at its edges (int_usage_windowed_per_date) instead of 90 days of rows.

    A run builds the tiles of its last as-of date's window (usage_window_plan(as_of_end),
    the tiles wholly inside (as_of_end - 90, as_of_end]) that are missing or stale, and
    keeps every other tile as it is. Each tile has one header row (customer_id null) that
    records what the tile was built from: its length in days, how many usage_daily
    partitions of its days the load log held, their rows and their latest loaded_at. A tile is stale when the load
    log now says otherwise: a partition loaded late (a gap filled, an out-of-order
    backfill) or replaced (a reprocessed day, whose loaded_at is new). Then the whole tile,
    header included, is deleted and rebuilt (delete+insert on tile_start), in the model's
    transaction. A tile with no usage at all still gets its header, so a day replaced by
    an empty drop empties its tile too.

    Point in time: a tile only ever holds the usage of its own days, and a night reads only
    the tiles whose days all fall in its windows, so what a night reads from a tile is
    what it would read from those days' rows.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='tile_start',
        pre_hook="{{ lock_usage_tiles() }}",
        on_schema_change='fail',
        indexes=usage_tile_indexes()
    )
}}

{%- set size = usage_tile_days() -%}
{%- set tiles = usage_window_plan(as_of_bounds()['end'])[90]['tiles'] %}

with

needed_tiles as (

    {% if tiles -%}
        select
            needed.tile_start,
            needed.tile_end
        from (
            values
            {%- for tile in tiles %}
                (
                    {{ date_literal(tile) }},
                    {{ date_literal(tile, size - 1) }}
                ){{ ',' if not loop.last }}
            {%- endfor %}
        ) as needed (tile_start, tile_end)
    {%- else -%}
        -- The window holds no whole tile (usage_tile_days above 45).
        select
            cast(null as date) as tile_start,
            cast(null as date) as tile_end
        where false
    {%- endif %}

),

usage_loads as (

    select
        drop_date,
        row_count,
        loaded_at
    from {{ ref('stg_raw__loaded_drops') }}
    where table_name = 'usage_daily'

),

tile_sources as (

    -- What the load log holds for each needed tile's days now.
    select
        needed_tiles.tile_start,
        needed_tiles.tile_end,
        count(usage_loads.drop_date) as loaded_drops,
        coalesce(sum(usage_loads.row_count), 0) as loaded_rows,
        max(usage_loads.loaded_at) as last_loaded_at
    from needed_tiles
    left join usage_loads
        on usage_loads.drop_date between needed_tiles.tile_start and needed_tiles.tile_end
    group by needed_tiles.tile_start, needed_tiles.tile_end

),

stale_tiles as (

    select tile_sources.*
    from tile_sources
    {% if is_incremental() -%}
        left join {{ this }} as built
            on
                tile_sources.tile_start = built.tile_start
                and built.customer_id is null
        where
            built.tile_start is null
            or built.tile_days != {{ size }}
            or built.loaded_drops != tile_sources.loaded_drops
            or built.loaded_rows != tile_sources.loaded_rows
            or built.last_loaded_at is distinct from tile_sources.last_loaded_at
    {%- endif %}

),

tile_usage as (

    -- The stale tiles' usage rows. The bounds come from stale_tiles itself, so a night
    -- with every tile current reads no usage row (PostgreSQL evaluates them first and
    -- scans the drop_date index over an empty range); usage_date = drop_date (see
    -- usage_days_in_windows), so each day is one partition.
    select
        usage_days.usage_date
        - cast(mod(usage_days.usage_date - cast('1970-01-01' as date), {{ size }}) as integer)
            as tile_start,
        usage_days.customer_id,
        usage_days.usage_date,
        usage_days.calls,
        usage_days.data_gb,
        usage_days.logins,
        usage_days.session_minutes,
        usage_days.features_used
    from {{ ref('stg_raw__usage_days') }} as usage_days
    where
        usage_days.usage_date >= (select min(stale_tiles.tile_start) from stale_tiles)
        and usage_days.usage_date <= (select max(stale_tiles.tile_end) from stale_tiles)
        and usage_days.drop_date >= (select min(stale_tiles.tile_start) from stale_tiles)
        and usage_days.drop_date <= (select max(stale_tiles.tile_end) from stale_tiles)

),

customer_tiles as (

    select
        tile_usage.tile_start,
        tile_usage.customer_id,
        sum(tile_usage.calls) as calls,
        sum(tile_usage.data_gb) as data_gb,
        sum(tile_usage.logins) as logins,
        sum(tile_usage.session_minutes) as session_minutes,
        count(*) as usage_days,
        count(case when tile_usage.logins > 0 then 1 end) as active_days,
        sum(tile_usage.features_used) as features_used_sum,
        max(tile_usage.features_used) as features_used_max,
        max(case when tile_usage.logins > 0 then tile_usage.usage_date end) as last_login_date
    from tile_usage
    -- Between the bounds above lie current tiles too when the stale ones are not adjacent.
    inner join stale_tiles on tile_usage.tile_start = stale_tiles.tile_start
    group by tile_usage.tile_start, tile_usage.customer_id

),

final as (

    select
        stale_tiles.tile_start,
        cast(null as bigint) as customer_id,
        cast(null as bigint) as calls,
        cast(null as double precision) as data_gb,
        cast(null as bigint) as logins,
        cast(null as double precision) as session_minutes,
        cast(null as bigint) as usage_days,
        cast(null as bigint) as active_days,
        cast(null as bigint) as features_used_sum,
        cast(null as integer) as features_used_max,
        cast(null as date) as last_login_date,
        {{ size }} as tile_days,
        cast(stale_tiles.loaded_drops as bigint) as loaded_drops,
        cast(stale_tiles.loaded_rows as bigint) as loaded_rows,
        stale_tiles.last_loaded_at
    from stale_tiles

    union all

    select
        tile_start,
        cast(customer_id as bigint) as customer_id,
        cast(calls as bigint) as calls,
        cast(data_gb as double precision) as data_gb,
        cast(logins as bigint) as logins,
        cast(session_minutes as double precision) as session_minutes,
        cast(usage_days as bigint) as usage_days,
        cast(active_days as bigint) as active_days,
        cast(features_used_sum as bigint) as features_used_sum,
        cast(features_used_max as integer) as features_used_max,
        last_login_date,
        cast(null as integer) as tile_days,
        cast(null as bigint) as loaded_drops,
        cast(null as bigint) as loaded_rows,
        cast(null as timestamp) as last_loaded_at
    from customer_tiles

)

select * from final
