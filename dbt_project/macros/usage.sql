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
    Usage tiles: per-customer sums of usage over aligned blocks of days (int_usage_tiles),
    so that a night reads each 90-day window as a few tiles plus the days at its edges
    instead of every day. Tiles come in the sizes of usage_tile_sizes, each a multiple of
    the one before (default 4, 8, 16 and 32 days): a tile of one size is built from the
    tiles of the size before it that it contains (the smallest from the days' rows), so a
    night that completes a tile aggregates two rows a customer per size, not its days.
    A window is read as the largest tiles that fit, then smaller ones towards its edges:
    at the default sizes about 13 rows a customer for the three windows together, against
    24 for tiles of one size (10 days) and 90 without tiles.
    Tiles of every size are aligned on whole multiples of their size in days since
    1970-01-01, so every night and every run agrees on them; a tile covers [tile_start,
    tile_start + tile_days - 1].
-#}
{% macro usage_tile_sizes() -%}
    {%- set sizes = var('usage_tile_sizes') -%}
    {#- A namespace: a plain `set` inside the loop below would not outlive it. -#}
    {%- set found = namespace(problem=none) -%}
    {%- if sizes is string or sizes is not iterable or sizes | length == 0 -%}
        {%- set found.problem = 'a list of day counts' -%}
    {%- else -%}
        {%- for size in sizes -%}
            {%- if size is not number or size < 2 or size > 90 -%}
                {%- set found.problem = 'day counts from 2 to 90' -%}
            {%- elif not loop.first and (size <= loop.previtem or size % loop.previtem != 0) -%}
                {%- set found.problem = 'ascending, each a multiple of the one before' -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if found.problem is not none -%}
        {{ exceptions.raise_compiler_error(
            "usage_tile_sizes must be " ~ found.problem ~ " (e.g. [4, 8, 16, 32]), not " ~ sizes) }}
    {%- endif -%}
    {{ return(sizes | map('int') | list) }}
{%- endmacro %}

{#- The start of the tile of `size` days that holds `day`. -#}
{% macro usage_tile_start(day, size) -%}
    {%- set days_since_epoch = (day - modules.datetime.date(1970, 1, 1)).days -%}
    {{ return(day - modules.datetime.timedelta(days=days_since_epoch % size)) }}
{%- endmacro %}

{#- The same in SQL, for a date column. -#}
{% macro usage_tile_start_of(column, size) -%}
    {{ column }} - cast(mod({{ column }} - cast('1970-01-01' as date), {{ size }}) as integer)
{%- endmacro %}


{#-
    The tiles of every size wholly inside the 90-day window (day - 90, day]: the tiles
    int_usage_tiles keeps current for a night, as [size, start] pairs. Every tile a night
    reads is one of them, and so is every smaller tile one of them is built from.
-#}
{% macro usage_tiles_in_window(day) -%}
    {%- set one_day = modules.datetime.timedelta(days=1) -%}
    {%- set first_day = day - one_day * 89 -%}
    {%- set tiles = [] -%}
    {%- for size in usage_tile_sizes() -%}
        {%- set first_tile = usage_tile_start(first_day, size) -%}
        {%- if first_tile < first_day -%}
            {%- set first_tile = first_tile + one_day * size -%}
        {%- endif -%}
        {%- for index in range(90 // size + 1) -%}
            {%- set tile = first_tile + one_day * (index * size) -%}
            {%- if tile + one_day * (size - 1) <= day -%}
                {%- do tiles.append([size, tile]) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(tiles) }}
{%- endmacro %}


{#-
    How the feature windows of one as-of date D are read: for each window length W (7,
    30, 90 days: (D-W, D]), the tiles it is read as ('tiles', [size, start] pairs) and
    the days no tile of it covers ('days', read from the usage rows). From the window's
    first day on, each step takes the largest tile that starts there and ends inside the
    window, or else the day itself; every day of the window is in exactly one of the
    two, so each sum takes every day once.
-#}
{% macro usage_window_plan(day) -%}
    {%- set sizes = usage_tile_sizes() | reverse | list -%}
    {%- set one_day = modules.datetime.timedelta(days=1) -%}
    {%- set plan = {} -%}
    {%- for window in [7, 30, 90] -%}
        {%- set tiles = [] -%}
        {%- set days = [] -%}
        {%- set at = namespace(day=day - one_day * (window - 1)) -%}
        {%- for _ in range(window) -%}
            {%- if at.day <= day -%}
                {%- set step = namespace(size=1) -%}
                {%- for size in sizes -%}
                    {%- if step.size == 1 and usage_tile_start(at.day, size) == at.day
                        and at.day + one_day * (size - 1) <= day -%}
                        {%- set step.size = size -%}
                    {%- endif -%}
                {%- endfor -%}
                {%- if step.size == 1 -%}
                    {%- do days.append(at.day) -%}
                {%- else -%}
                    {%- do tiles.append([step.size, at.day]) -%}
                {%- endif -%}
                {%- set at.day = at.day + one_day * step.size -%}
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

{#-
    A tile row (its tile_days and tile_start columns, qualified by `relation` when given)
    is one of `tiles` ([size, start] pairs); `false` for none. One condition per size, so
    PostgreSQL reads each by its index on (tile_days, tile_start).
-#}
{% macro in_tiles(tiles, relation=none) -%}
    {%- set prefix = relation ~ '.' if relation else '' -%}
    {%- set by_size = {} -%}
    {%- for size, start in tiles -%}
        {%- do by_size.setdefault(size, []).append(start) -%}
    {%- endfor -%}
    {%- if not by_size -%}
        false
    {%- else -%}
        ({%- for size in by_size | sort -%}
            ({{ prefix }}tile_days = {{ size }} and {{ prefix }}tile_start in (
                {%- for start in by_size[size] | unique | sort -%}
                    {{ date_literal(start) }}{{ ', ' if not loop.last }}
                {%- endfor -%}))
            {{- ' or ' if not loop.last }}
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

{#-
    pre_hook of int_usage_tiles, after the lock: rows of a tile size usage_tile_sizes does
    not list are never read again, so they are deleted; a change of sizes thus leaves no
    rows behind, and the sizes still listed keep theirs. The condition is ranges of
    tile_days, which PostgreSQL reads by the tiles' index: a night finds nothing to delete
    without scanning the table (as many rows as the window's usage). The layout from
    before tiles of several sizes (tiles of one size, 10 days, whose customer rows had no
    tile_days) is deleted whole, headers included, whatever the sizes.
-#}
{% macro delete_unlisted_usage_tiles() -%}
    {%- if is_incremental() -%}
        {%- set sizes = usage_tile_sizes() -%}
        {%- set old_layout = run_query(
            "select 1 from " ~ this ~ " where tile_days is null limit 1") -%}
        delete from {{ this }}
        {% if old_layout.rows | length == 0 -%}
        where
            tile_days is null
            or tile_days < {{ sizes[0] }}
            {%- for size in sizes[1:] %}
            or (tile_days > {{ sizes[loop.index0] }} and tile_days < {{ size }})
            {%- endfor %}
            or tile_days > {{ sizes[-1] }}
        {%- endif %}
    {%- endif -%}
{%- endmacro %}

{#-
    The tiles' indexes on PostgreSQL, kept by the model's hooks rather than dbt's `indexes`
    config, which creates indexes only with the table:
    - a BRIN index on (tile_days, tile_start), for the night's read of its tiles and a
      build's delete of those it rebuilds. A build writes its rows ordered by tile
      (int_usage_tiles) and tiles are only ever added (a stale one is rebuilt, rarely),
      so each tile sits in a run of pages and a block-range index finds it. With a b-tree
      over every customer row (tile_days, tile_start, customer_id) instead, a night's insert of a tile's 500,000
      rows took 1.1 s instead of 0.35 s, and the index 605 MB for 20 M rows (a BRIN
      index: a few hundred kB); the night's read of its tiles took as long with either
      (6.3 against 6.1 s, at 500,000 customers);
    - a unique index on the headers only (customer_id null): a build looks each tile's
      header up by it, and a tile can have one header only.
    The pre_hook drops any other index of the table (a warehouse built earlier holds that
    b-tree, or one on (tile_start, customer_id) from before tiles of several sizes), the
    post_hook creates these where they are missing.
-#}
{% macro usage_tile_range_index_name() -%}
    {{ return(this.identifier ~ '_by_range') }}
{%- endmacro %}

{% macro usage_tile_header_index_name() -%}
    {{ return(this.identifier ~ '_headers') }}
{%- endmacro %}

{% macro drop_other_usage_tile_indexes() -%}
    {{ return(adapter.dispatch('drop_other_usage_tile_indexes', 'churnops')()) }}
{%- endmacro %}

{% macro default__drop_other_usage_tile_indexes() -%}
{%- endmacro %}

{% macro postgres__drop_other_usage_tile_indexes() -%}
    {%- if is_incremental() -%}
        do $$
        declare
            other_index regclass;
        begin
            for other_index in
                select indexrelid::regclass from pg_index
                where
                    indrelid = '{{ this.schema }}.{{ this.identifier }}'::regclass
                    and indexrelid is distinct from to_regclass(
                        '{{ this.schema }}.{{ usage_tile_range_index_name() }}'
                    )
                    and indexrelid is distinct from to_regclass(
                        '{{ this.schema }}.{{ usage_tile_header_index_name() }}'
                    )
            loop
                execute 'drop index ' || other_index::text;
            end loop;
        end
        $$
    {%- endif -%}
{%- endmacro %}

{% macro create_usage_tile_index() -%}
    {{ return(adapter.dispatch('create_usage_tile_index', 'churnops')()) }}
{%- endmacro %}

{% macro default__create_usage_tile_index() -%}
{%- endmacro %}

{#- autosummarize: each block range is summarized as soon as the next one is written to,
    instead of at the next VACUUM (until then a query reads the range whatever it holds). -#}
{% macro postgres__create_usage_tile_index() -%}
    create index if not exists {{ usage_tile_range_index_name() }}
    on {{ this }} using brin (tile_days, tile_start) with (autosummarize = on);
    create unique index if not exists {{ usage_tile_header_index_name() }}
    on {{ this }} (tile_days, tile_start) where customer_id is null
{%- endmacro %}


{#-
    pre_hook of int_usage_windowed on PostgreSQL, for a run of one as-of date (the nightly):
    its aggregation runs without parallel workers, for this model's transaction only. Each
    worker sees every customer (the groups are the customers, about 13 rows each), so each
    builds a hash table of all of them and the leader merges three: three times the work,
    on a machine whose cores the night's other models use too. Measured at 500,000
    customers, with int_invoices_windowed beside it as in a night's build: both done in
    8.7-9.4 s serial against 11.6-13.0 s parallel (alone: 9.7 s against 8.9 s).
-#}
{% macro serial_usage_aggregation() -%}
    {{ return(adapter.dispatch('serial_usage_aggregation', 'churnops')()) }}
{%- endmacro %}

{% macro default__serial_usage_aggregation() -%}
{%- endmacro %}

{% macro postgres__serial_usage_aggregation() -%}
    {%- if as_of_bounds()['days'] == 1 -%}
        set local max_parallel_workers_per_gather = 0
    {%- endif -%}
{%- endmacro %}
