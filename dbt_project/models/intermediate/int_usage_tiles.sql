{#-
    Usage tiles (macros/usage.sql): per customer, usage summed over aligned blocks of days
    in the sizes of usage_tile_sizes (default 4, 8, 16 and 32 days), so the nightly reads
    its windows as about a dozen rows a customer (int_usage_windowed_per_date) instead of
    90 days of rows.

    A run keeps current the tiles of every size wholly inside its last as-of date's 90-day
    window (usage_tiles_in_window(as_of_end)): it builds those missing or stale and keeps
    every other tile as it is. The smallest tiles are built from the days' usage rows;
    each larger tile from the tiles of the size before it that it contains, those already
    built and current or those this run rebuilds, so a night that completes a 32-day tile
    aggregates two rows a customer for it instead of 32 days of rows.

    Each tile has one header row (customer_id null) that records what the tile was built
    from: how many usage_daily partitions of its days the load log held, their rows and
    their latest loaded_at. A tile is stale when the load log now says otherwise: a
    partition loaded late (a gap filled, an out-of-order backfill) or replaced (a
    reprocessed day, whose loaded_at is new). Then the whole tile, header included, is
    deleted and rebuilt (delete+insert on tile_days and tile_start), in the model's
    transaction; so is every larger tile over that day, as its header is stale too. A
    tile with no usage at all still gets its header, so a day replaced by an empty drop
    empties its tiles too.

    Point in time: a tile only ever holds the usage of its own days, and a night reads only
    the tiles whose days all fall in its windows, so what a night reads from a tile is
    what it would read from those days' rows.

    The rows are written ordered by tile, so each tile, header included, lies in one run
    of pages even when a run builds many (a bootstrap's first build: every tile of the
    window), and the tiles' BRIN index (macros/usage.sql) finds a tile without reading
    its neighbours' rows. Unordered, a first build wrote its 8-day tiles interleaved with
    each other and the headers of every tile at the start: at 500,000 customers the next
    night's usage read 5,070,319 other tile rows and threw them away, 35,930 ordered; its
    query took 7.5 / 8.6 s against 8.3 / 9.2 s, and the whole
    night 27.6 / 28.0 s against 31.8 / 30.9 s (alternating, a noisy hour). The sort costs
    a first build 3.2 s of its 147 s; a night sorts one tile's rows, their keys all equal.

    Logged on PostgreSQL, unlike the other intermediates (dbt_project.yml): they are
    rebuilt each run, the tiles are kept from night to night. Unlogged, a server crash
    would empty them and the next night rebuild its whole window's tiles (minutes at
    500,000 customers); and a night's tile write was no faster unlogged (27.3 / 31.6 s
    against 26.4 / 27.0 s logged, alternating).
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['tile_days', 'tile_start'],
        pre_hook=[
            "{{ lock_usage_tiles() }}",
            "{{ delete_unlisted_usage_tiles() }}",
            "{{ drop_other_usage_tile_indexes() }}",
        ],
        post_hook=["{{ create_usage_tile_index() }}"],
        on_schema_change='fail',
        unlogged=false
    )
}}

{%- set sizes = usage_tile_sizes() -%}
{%- set tiles = usage_tiles_in_window(as_of_bounds()['end']) %}

with

needed_tiles as (

    {% if tiles -%}
        select
            needed.tile_days,
            needed.tile_start,
            needed.tile_end
        from (
            values
            {%- for size, start in tiles %}
                (
                    {{ size }},
                    {{ date_literal(start) }},
                    {{ date_literal(start, size - 1) }}
                ){{ ',' if not loop.last }}
            {%- endfor %}
        ) as needed (tile_days, tile_start, tile_end)
    {%- else -%}
        -- The window holds no whole tile (no size of 90 days or less fits it).
        select
            cast(null as integer) as tile_days,
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
        needed_tiles.tile_days,
        needed_tiles.tile_start,
        needed_tiles.tile_end,
        count(usage_loads.drop_date) as loaded_drops,
        coalesce(sum(usage_loads.row_count), 0) as loaded_rows,
        max(usage_loads.loaded_at) as last_loaded_at
    from needed_tiles
    left join usage_loads
        on usage_loads.drop_date between needed_tiles.tile_start and needed_tiles.tile_end
    group by needed_tiles.tile_days, needed_tiles.tile_start, needed_tiles.tile_end

),

stale_tiles as (

    select tile_sources.*
    from tile_sources
    {% if is_incremental() -%}
        left join {{ this }} as built
            on
                tile_sources.tile_days = built.tile_days
                and tile_sources.tile_start = built.tile_start
                and built.customer_id is null
        where
            built.tile_start is null
            or built.loaded_drops != tile_sources.loaded_drops
            or built.loaded_rows != tile_sources.loaded_rows
            or built.last_loaded_at is distinct from tile_sources.last_loaded_at
    {%- endif %}

),

{%- set smallest = sizes[0] %}
{%- for size in sizes %}

    stale_tiles_{{ size }} as (

        select
            tile_start,
            tile_end
        from stale_tiles
        where tile_days = {{ size }}

    ),
{%- endfor %}

tile_usage as (

    -- The stale smallest tiles' usage rows, by the days of their drops. The bounds come
    -- from those tiles themselves, so a night with every one of them current reads no
    -- usage row (PostgreSQL evaluates them first and scans the drop_date index over an
    -- empty range). usage_date = drop_date (see usage_days_in_windows), so each day is
    -- one partition, and the drops' bounds alone select the tiles' days: the same bounds
    -- on usage_date too made PostgreSQL estimate 1,136 rows of the 2,000,000 a night's
    -- tile reads at 500,000 customers (two ranges on unknown values, a two-hundredth
    -- each), and sort them for the aggregation below instead of hashing them.
    select
        {{ usage_tile_start_of('usage_days.usage_date', smallest) }} as tile_start,
        usage_days.customer_id,
        usage_days.usage_date,
        usage_days.calls,
        usage_days.data_gb,
        usage_days.logins,
        usage_days.session_minutes,
        usage_days.features_used
    from {{ ref('stg_raw__usage_days') }} as usage_days
    where
        usage_days.drop_date
        >= (select min(stale_tiles_{{ smallest }}.tile_start) from stale_tiles_{{ smallest }})
        and usage_days.drop_date
        <= (select max(stale_tiles_{{ smallest }}.tile_end) from stale_tiles_{{ smallest }})

),

customer_tiles_{{ smallest }} as (

    -- Aggregated first, then kept for the stale tiles: between the bounds above lie
    -- current tiles too when the stale ones are not adjacent. Joined before the GROUP
    -- BY, the stale tiles (a handful of rows PostgreSQL cannot count ahead) cut its
    -- estimate of the rows to 1,136 again, and it sorted them; grouped first
    -- it hashes them. At 500,000 customers a night's tile query took 1.9-2.2 s against
    -- 2.6-2.7 s sorted (three nights each, alternating; EXPLAIN ANALYZE 1.75 / 2.70 s).
    select tiles.*
    from (
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
            max(case when tile_usage.logins > 0 then tile_usage.usage_date end)
                as last_login_date
        from tile_usage
        group by tile_usage.tile_start, tile_usage.customer_id
    ) as tiles
    inner join stale_tiles_{{ smallest }}
        on tiles.tile_start = stale_tiles_{{ smallest }}.tile_start

),

{%- for size in sizes[1:] %}
    {%- set part = sizes[loop.index0] %}

    parts_of_{{ size }} as (

    -- The {{ part }}-day tiles inside the stale {{ size }}-day ones: those this run rebuilt, and
    -- the current ones as built (a stale one's old rows are left out: it was rebuilt).
    -- Counts as integers, so PostgreSQL sums them in by-value states (see the nightly's
    -- int_usage_windowed_per_date).
        select
            {{ usage_tile_start_of('parts.tile_start', size) }} as tile_start,
            parts.customer_id,
            cast(parts.calls as integer) as calls,
            parts.data_gb,
            cast(parts.logins as integer) as logins,
            parts.session_minutes,
            cast(parts.usage_days as integer) as usage_days,
            cast(parts.active_days as integer) as active_days,
            cast(parts.features_used_sum as integer) as features_used_sum,
            parts.features_used_max,
            parts.last_login_date
        from (
            select
                tile_start,
                customer_id,
                calls,
                data_gb,
                logins,
                session_minutes,
                usage_days,
                active_days,
                features_used_sum,
                features_used_max,
                last_login_date
            from customer_tiles_{{ part }}
            {% if is_incremental() -%}
            union all
            select
                built.tile_start,
                built.customer_id,
                built.calls,
                built.data_gb,
                built.logins,
                built.session_minutes,
                built.usage_days,
                built.active_days,
                built.features_used_sum,
                built.features_used_max,
                built.last_login_date
            from {{ this }} as built
            where
                built.tile_days = {{ part }}
                and built.customer_id is not null
                and built.tile_start >= (select min(stale_tiles_{{ size }}.tile_start) from stale_tiles_{{ size }})
                and built.tile_start <= (select max(stale_tiles_{{ size }}.tile_end) from stale_tiles_{{ size }})
                and built.tile_start not in (
                    select stale_tiles.tile_start from stale_tiles
                    where stale_tiles.tile_days = {{ part }}
                )
        {%- endif %}
        ) as parts

    ),

    customer_tiles_{{ size }} as (

        -- Grouped first, then kept for the stale tiles of this size, as the smallest above.
        select tiles.*
        from (
            select
                parts_of_{{ size }}.tile_start,
                parts_of_{{ size }}.customer_id,
                sum(parts_of_{{ size }}.calls) as calls,
                sum(parts_of_{{ size }}.data_gb) as data_gb,
                sum(parts_of_{{ size }}.logins) as logins,
                sum(parts_of_{{ size }}.session_minutes) as session_minutes,
                sum(parts_of_{{ size }}.usage_days) as usage_days,
                sum(parts_of_{{ size }}.active_days) as active_days,
                sum(parts_of_{{ size }}.features_used_sum) as features_used_sum,
                max(parts_of_{{ size }}.features_used_max) as features_used_max,
                max(parts_of_{{ size }}.last_login_date) as last_login_date
            from parts_of_{{ size }}
            group by parts_of_{{ size }}.tile_start, parts_of_{{ size }}.customer_id
        ) as tiles
        -- The parts of current tiles of this size, between the stale ones, are left out.
        inner join stale_tiles_{{ size }}
            on tiles.tile_start = stale_tiles_{{ size }}.tile_start

    ),
{%- endfor %}

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
        cast(stale_tiles.tile_days as integer) as tile_days,
        cast(stale_tiles.loaded_drops as bigint) as loaded_drops,
        cast(stale_tiles.loaded_rows as bigint) as loaded_rows,
        stale_tiles.last_loaded_at
    from stale_tiles
    {%- for size in sizes %}

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
            {{ size }} as tile_days,
            cast(null as bigint) as loaded_drops,
            cast(null as bigint) as loaded_rows,
            cast(null as timestamp) as last_loaded_at
        from customer_tiles_{{ size }}
    {%- endfor %}

)

select * from final
-- Each tile's rows together, in one run of pages (see the top).
order by tile_days, tile_start
