{#-
    (Not in as_of.sql: there every window length is the label horizon's var, and 90 here is
    the feature windows' length, another fact that happens to be the same number.)
    The usage rows the 90-day windows of the run's as-of dates read, for both usage
    models (int_usage_windowed_per_date, int_usage_windowed_by_frames). Every usage row's
    usage_date equals its drop day (the validation gate loads a row only in its own day's
    drop, and staging tests it), so a row dated on or before D was known on D. The
    drop_date bounds select the same rows by the partition key, which PostgreSQL indexes
    (tests/dbt/test_window_read_bounds.py): without the lower one a night at the end of a
    year scanned every day loaded (a year of usage at 50,000 customers: 0.8 s against 0.4 s
    by the drop_date index; at 500,000, about four times the window's 45M rows). DuckDB
    already skips row groups by the usage_date range.
-#}
{% macro usage_days_in_windows() %}
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
        and drop_date > {{ as_of_start(-90) }}
{%- endmacro %}


{#-
    Usage tiles: per-customer sums of usage over fixed blocks of usage_tile_days days
    (int_usage_tiles), so that a night reads each 90-day window as its whole tiles plus
    the days at its edges instead of every day: at the default 10 days, about 12 tiles
    and 16 days a customer instead of 90 days (a night's model alone on PostgreSQL at
    500,000 customers: about half the time).
    Tiles are aligned on whole multiples of usage_tile_days days since 1970-01-01, so
    every night and every run agrees on them; a tile covers [tile_start, tile_start +
    usage_tile_days - 1].
-#}
{% macro usage_tile_days() -%}
    {%- set size = var('usage_tile_days') | int -%}
    {%- if size < 1 or size > 90 -%}
        {{ exceptions.raise_compiler_error(
            "usage_tile_days must be 1 to 90 days, not " ~ size) }}
    {%- endif -%}
    {{ return(size) }}
{%- endmacro %}

{% macro usage_tile_start(day) -%}
    {%- set days_since_epoch = (day - modules.datetime.date(1970, 1, 1)).days -%}
    {{ return(day - modules.datetime.timedelta(days=days_since_epoch % usage_tile_days())) }}
{%- endmacro %}


{#-
    How the feature windows of one as-of date D are read: for each window length W (7,
    30, 90 days: (D-W, D]), the tiles wholly inside it ('tiles', their start dates) and
    its days no such tile covers ('days', read from the usage rows). Every day of the
    window is in exactly one of the two, so each sum takes every day once.
-#}
{% macro usage_window_plan(day) -%}
    {%- set size = usage_tile_days() -%}
    {%- set one_day = modules.datetime.timedelta(days=1) -%}
    {%- set plan = {} -%}
    {%- for window in [7, 30, 90] -%}
        {%- set first_day = day - one_day * (window - 1) -%}
        {%- set first_tile = usage_tile_start(first_day) -%}
        {%- if first_tile < first_day -%}
            {%- set first_tile = first_tile + one_day * size -%}
        {%- endif -%}
        {%- set tiles = [] -%}
        {%- set covered = [] -%}
        {%- for index in range(window // size + 1) -%}
            {%- set tile = first_tile + one_day * (index * size) -%}
            {%- if tile + one_day * (size - 1) <= day -%}
                {%- do tiles.append(tile) -%}
                {%- for offset in range(size) -%}
                    {%- do covered.append(tile + one_day * offset) -%}
                {%- endfor -%}
            {%- endif -%}
        {%- endfor -%}
        {%- set days = [] -%}
        {%- for offset in range(window) -%}
            {%- set window_day = first_day + one_day * offset -%}
            {%- if window_day not in covered -%}
                {%- do days.append(window_day) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- do plan.update({window: {'tiles': tiles, 'days': days}}) -%}
    {%- endfor -%}
    {{ return(plan) }}
{%- endmacro %}


{#-
    `column` falls on one of `days` (dates): the days grouped into runs of consecutive
    days, one BETWEEN each, so PostgreSQL reads them by index ranges; `false` for none.
-#}
{% macro on_days(column, days) -%}
    {%- set one_day = modules.datetime.timedelta(days=1) -%}
    {%- set firsts = [] -%}
    {%- set lasts = [] -%}
    {%- for day in days | unique | sort -%}
        {%- if lasts and lasts[-1] + one_day == day -%}
            {%- do lasts.pop() -%}
        {%- else -%}
            {%- do firsts.append(day) -%}
        {%- endif -%}
        {%- do lasts.append(day) -%}
    {%- endfor -%}
    {%- if not firsts -%}
        false
    {%- else -%}
        ({%- for first in firsts -%}
            {{ column }} between {{ date_literal(first) }} and {{ date_literal(lasts[loop.index0]) }}
            {{- ' or ' if not loop.last }}
        {%- endfor -%})
    {%- endif -%}
{%- endmacro %}

{#- `column` (a tile's start date) is one of `tiles`; `false` for none. -#}
{% macro in_tiles(column, tiles) -%}
    {%- if not tiles -%}
        false
    {%- else -%}
        {{ column }} in ({%- for tile in tiles -%}
            {{ date_literal(tile) }}{{ ', ' if not loop.last }}
        {%- endfor -%})
    {%- endif -%}
{%- endmacro %}


{#-
    pre_hook of int_usage_tiles: on PostgreSQL, one build of the tiles at a time (a
    transaction-level advisory lock, released at its commit). Two nights built at once
    would otherwise both find a tile stale and both insert it; the second now waits,
    then finds it current. DuckDB has one writer at a time already.
-#}
{% macro lock_usage_tiles() -%}
    {{ return(adapter.dispatch('lock_usage_tiles', 'churnops')()) }}
{%- endmacro %}

{% macro default__lock_usage_tiles() -%}
{%- endmacro %}

{% macro postgres__lock_usage_tiles() -%}
    select pg_advisory_xact_lock(hashtext('churnops.int_usage_tiles'))
{%- endmacro %}

{% macro usage_tile_indexes() -%}
    {{ return(adapter.dispatch('usage_tile_indexes', 'churnops')()) }}
{%- endmacro %}

{% macro default__usage_tile_indexes() -%}
    {{ return([]) }}
{%- endmacro %}

{#- The night's read of its tiles and a build's look-up of their headers, by tile_start. -#}
{% macro postgres__usage_tile_indexes() -%}
    {{ return([{'columns': ['tile_start', 'customer_id'], 'unique': True}]) }}
{%- endmacro %}
