{#- Small cross-database helpers: the same SQL must run on DuckDB and PostgreSQL. -#}

{#-
    Round a floating-point feature to `places` decimals and keep it double precision.
    Sums of doubles depend on the order the engine adds them in (parallel aggregation,
    window vs GROUP BY): rounding makes reruns and both computation paths identical.
    The value first goes through a decimal with 10 places (which absorbs the last-bit
    differences of those sums), then is rounded half away from zero to `places`.
    decimal(18, 10) is 64-bit on DuckDB (fast) and holds every feature's range (< 1e8);
    a value outside it fails the build on both engines instead of passing silently.

    Both engines must give the same double for the same double, to the last bit:
    - DuckDB casts a double to decimal(18, 10) as round-half-away(x * 1e10), the product
      taken in double precision (checked on duckdb 2.0 against 3M values).
    - PostgreSQL's float8 -> numeric cast keeps only 15 significant digits: from 1e5 up,
      x.xxxx4999999 becomes x.xxxx5 and rounds up where DuckDB rounds down (seen on
      9321136.724349998: DuckDB .7243, PostgreSQL .7244). So postgres__round_float takes
      the same product x * 1e10 in double, converts it exactly (bigint), then scales it
      by 1e-10 in numeric. The bigint cast rounds a product of exactly k + 0.5 to even
      where DuckDB rounds it away; that can only change the result when k + 1 is the tie
      5 * 10^(9 - places) of the final rounding, which is even for places <= 8, so k + 0.5
      rounds to the tie on both. 3M values (ties and their neighbours, ratios, sums, up to
      1e8): no difference (tests/dbt/test_round_float.py keeps checking it).
    - The rest stays in integers on PostgreSQL: half away from zero to `places` is
      (|k| + m / 2) / m with m = 10^(10 - places) in bigint division, the sign put back on
      the integer (so -0.00001 gives 0, not -0), and the integer n divided by 10^places in
      double precision. That division is correctly rounded, like the numeric -> float8
      cast it replaces, so the double is the same to the bit; numeric arithmetic and its
      float8 cast cost ~0.45 us a value (500,000 rows x 9 features: 2.5 s against 0.5 s),
      and a night rounds 19 features of every customer. The range check decimal(18, 10)
      made is explicit: |k| >= 10^18 fails the build, naming the value.
-#}
{% macro round_float(expression, places=4) -%}
    {{ return(adapter.dispatch('round_float', 'churnops')(expression, places)) }}
{%- endmacro %}

{% macro default__round_float(expression, places) -%}
    cast(round(cast({{ expression }} as numeric(18, 10)), {{ places }}) as double precision)
{%- endmacro %}

{% macro duckdb__round_float(expression, places) -%}
    cast(round(cast({{ expression }} as decimal(18, 10)), {{ places }}) as double)
{%- endmacro %}

{% macro postgres__round_float(expression, places) -%}
    {%- set value = 'cast(' ~ expression ~ ' as double precision)' -%}
    {%- set step = 10 ** (10 - places) -%}
    cast(
        case
            when abs({{ value }}) * cast(1e10 as double precision) >= cast(1e18 as double precision)
                then cast(
                    'round_float: ' || {{ value }} || ' is outside decimal(18, 10)' as bigint
                )
            when {{ value }} < 0
                then -((cast(-{{ value }} * cast(1e10 as double precision) as bigint) + {{ step // 2 }}) / {{ step }})
            else (cast({{ value }} * cast(1e10 as double precision) as bigint) + {{ step // 2 }}) / {{ step }}
        end
        as double precision
    ) / cast({{ 10 ** places }} as double precision)
{%- endmacro %}


{#-
    A string in byte order, for ORDER BY tie-breaks that must pick the same row on every
    engine. DuckDB compares strings byte by byte (no default_collation is set); PostgreSQL
    sorts by the database's collation, and a libc or ICU locale such as en-US orders
    'inv-a' before 'INV-B' where bytes put 'INV-B' first. "C" is byte order.
-#}
{% macro byte_order(expression) -%}
    {{ return(adapter.dispatch('byte_order', 'churnops')(expression)) }}
{%- endmacro %}

{% macro default__byte_order(expression) -%}
    {{ expression }}
{%- endmacro %}

{% macro postgres__byte_order(expression) -%}
    {{ expression }} collate "C"
{%- endmacro %}


{#- numerator / denominator as a double, or `otherwise` when the denominator is 0 or null. -#}
{% macro safe_ratio(numerator, denominator, otherwise=0) -%}
    coalesce(
        cast({{ numerator }} as double precision)
        / nullif(cast({{ denominator }} as double precision), 0),
        {{ otherwise }}
    )
{%- endmacro %}


{#- Whole days since 1970-01-01: an integer sort key for RANGE window frames. -#}
{% macro day_number(date_expression) -%}
    cast({{ date_expression }} - cast('1970-01-01' as date) as integer)
{%- endmacro %}


{#- Order of the plans from cheapest to dearest: a move to a lower rank is a downgrade. -#}
{% macro plan_rank(column) -%}
    case {{ column }}
        when 'basic' then 1
        when 'standard' then 2
        when 'premium' then 3
    end
{%- endmacro %}


{#-
    The marts' indexes. PostgreSQL reads a night's rows (scoring) and deletes an as-of
    range (each incremental run) through a b-tree on (as_of_date, customer_id): without it
    both scan every stored day. Unique, so a duplicate key fails the insert. DuckDB prunes
    by its row groups' min/max instead, and an ART index would slow every night's delete
    and insert: none there. dbt-postgres creates the index with the table; a mart made
    before this index existed gets it by hand (README, "The warehouse").
-#}
{% macro mart_indexes() -%}
    {{ return(adapter.dispatch('mart_indexes', 'churnops')()) }}
{%- endmacro %}

{% macro default__mart_indexes() -%}
    {{ return([]) }}
{%- endmacro %}

{% macro postgres__mart_indexes() -%}
    {{ return([{'columns': ['as_of_date', 'customer_id'], 'unique': True}]) }}
{%- endmacro %}


{#-
    post_hook of the intermediate tables: fresh statistics for the models that read them.
    PostgreSQL has none for a table dbt has just created until autovacuum comes by, and
    plans the next model's joins blind (int_as_of_dates, one row, planned as 2,550: the
    night's usage aggregation sorted 9M rows on disk at 100,000 customers instead of
    hashing them). ANALYZE samples a fixed number of rows, so it costs little for a table
    rebuilt whole. DuckDB keeps its statistics as it writes: nothing there.

    An incremental one (int_usage_tiles, kept from night to night) is analyzed only when
    the rows written since its last ANALYZE, this run's included, pass autovacuum's own
    threshold for it (the server's autovacuum_analyze_threshold + _scale_factor x its
    rows; 50 + 10 % by default), as autovacuum would: a night adds a tile, about 2.5 % of
    the window's tiles, and sampling the whole table took 0.4-1.7 s of the night's build
    at 500,000 customers. The statistics of the nights in between are those of the last
    ANALYZE (at most a tenth of the rows newer), and a first build is always analyzed.
-#}
{% macro analyze_table() -%}
    {{ return(adapter.dispatch('analyze_table', 'churnops')()) }}
{%- endmacro %}

{% macro default__analyze_table() -%}
{%- endmacro %}

{% macro postgres__analyze_table() -%}
    {%- if config.get('materialized') != 'incremental' -%}
        analyze {{ this }}
    {%- else -%}
        do $analyze$
        begin
            if (
                select
                    tables.reltuples < 0
                    or coalesce(activity.n_mod_since_analyze, 0)
                    + pg_stat_get_xact_tuples_inserted(tables.oid)
                    + pg_stat_get_xact_tuples_updated(tables.oid)
                    + pg_stat_get_xact_tuples_deleted(tables.oid)
                    > current_setting('autovacuum_analyze_threshold')::float8
                    + current_setting('autovacuum_analyze_scale_factor')::float8
                    * tables.reltuples
                from pg_class as tables
                left join pg_stat_user_tables as activity on activity.relid = tables.oid
                where tables.oid = '{{ this.include(database=false) }}'::regclass
            ) then
                analyze {{ this.include(database=false) }};
            end if;
        end
        $analyze$
    {%- endif -%}
{%- endmacro %}
