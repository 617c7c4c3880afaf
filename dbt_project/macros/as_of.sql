{#-
    The as-of range of a run. Every model is built for the as-of dates in
    [as_of_start, as_of_end]; `as_of_date` sets both. The nightly run passes one date,
    the history bootstrap a long range. A run without them fails: silently defaulting to
    "today" would write a partition for a day whose drops may not be loaded.
-#}
{% macro as_of_bounds() -%}
    {%- set as_of_date = var('as_of_date', none) -%}
    {%- set start = var('as_of_start', none) -%}
    {%- set end = var('as_of_end', none) -%}
    {%- if as_of_date is not none -%}
        {%- if (start is not none and start | string != as_of_date | string)
            or (end is not none and end | string != as_of_date | string) -%}
            {{ exceptions.raise_compiler_error(
                "as_of_date=" ~ as_of_date ~ " contradicts as_of_start/as_of_end; pass one or the other") }}
        {%- endif -%}
        {%- set start = as_of_date -%}
        {%- set end = as_of_date -%}
    {%- endif -%}
    {%- if start is none or end is none -%}
        {%- if execute -%}
            {{ exceptions.raise_compiler_error(
                "churnops needs its as-of range: --vars '{as_of_date: YYYY-MM-DD}' or "
                ~ "--vars '{as_of_start: YYYY-MM-DD, as_of_end: YYYY-MM-DD}'") }}
        {%- endif -%}
        {#- Parsing renders models without running them: any placeholder will do. -#}
        {%- set start = '1970-01-01' -%}
        {%- set end = '1970-01-01' -%}
    {%- endif -%}
    {%- set parsed = [] -%}
    {%- for value in [start, end] -%}
        {%- set text = value | string | trim -%}
        {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', text) -%}
            {{ exceptions.raise_compiler_error("as-of date " ~ text ~ " is not YYYY-MM-DD") }}
        {%- endif -%}
        {%- do parsed.append(modules.datetime.datetime.strptime(text, '%Y-%m-%d').date()) -%}
    {%- endfor -%}
    {%- if parsed[0] > parsed[1] -%}
        {{ exceptions.raise_compiler_error(
            "as_of_start " ~ parsed[0] ~ " is after as_of_end " ~ parsed[1]) }}
    {%- endif -%}
    {{ return({'start': parsed[0], 'end': parsed[1], 'days': (parsed[1] - parsed[0]).days + 1}) }}
{%- endmacro %}


{#- A date literal shifted by offset_days, valid on DuckDB and PostgreSQL. -#}
{% macro date_literal(day, offset_days=0) -%}
    cast('{{ (day + modules.datetime.timedelta(days=offset_days)).isoformat() }}' as date)
{%- endmacro %}

{% macro as_of_start(offset_days=0) -%}
    {{ date_literal(as_of_bounds()['start'], offset_days) }}
{%- endmacro %}

{% macro as_of_end(offset_days=0) -%}
    {{ date_literal(as_of_bounds()['end'], offset_days) }}
{%- endmacro %}


{#-
    Which of the two equivalent models int_usage_windowed reads: int_usage_windowed_per_date
    ('group_by': a GROUP BY per as-of date, cost ~ dates x customers x 90 rows, best for the
    nightly single date) or int_usage_windowed_by_frames ('window': one pass of RANGE window
    frames over per-customer daily rows, cost ~ customers x (dates + 89) rows, best for a
    long bootstrap range).
-#}
{% macro usage_window_strategy() -%}
    {%- set forced = var('usage_window_strategy', 'auto') -%}
    {%- if forced not in ['auto', 'group_by', 'window'] -%}
        {{ exceptions.raise_compiler_error(
            "usage_window_strategy must be auto, group_by or window, not " ~ forced) }}
    {%- endif -%}
    {%- if forced != 'auto' -%}
        {{ return(forced) }}
    {%- endif -%}
    {%- if as_of_bounds()['days'] <= var('usage_group_by_max_dates', 28) | int -%}
        {{ return('group_by') }}
    {%- endif -%}
    {{ return('window') }}
{%- endmacro %}


{#-
    Data tests on big tables only look at the rows of this run: a `where` config may use
    the placeholders __as_of_start__ / __as_of_end__ (and __label_as_of_start__ /
    __label_as_of_end__: the as-of dates whose label windows close on the run's days, one
    label horizon earlier), replaced here with date literals.
    This is the documented way to use macros in `where` (its YAML is rendered without them).
-#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') -%}
    {%- if where -%}
        {%- if '__as_of_' in where or '__label_as_of_' in where -%}
            {%- set where = where
                | replace('__label_as_of_start__', as_of_start(-var('label_horizon_days')))
                | replace('__label_as_of_end__', as_of_end(-var('label_horizon_days')))
                | replace('__as_of_start__', as_of_start())
                | replace('__as_of_end__', as_of_end()) -%}
        {%- endif -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}


{#-
    pre_hook of the incremental marts: delete every as-of date of this run's range, not
    only the dates the new batch contains, so a rerun of D replaces exactly D even when D
    produced no rows. Runs inside the model's transaction, before its insert.
-#}
{% macro delete_as_of_range(offset_days=0) -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where {{ in_as_of_range(offset_days) }}
    {%- endif -%}
{%- endmacro %}

{#- as_of_date lies in this run's as-of range, `offset_days` days away (see as_of_start). -#}
{% macro in_as_of_range(offset_days=0) -%}
    as_of_date between {{ as_of_start(offset_days) }} and {{ as_of_end(offset_days) }}
{%- endmacro %}



{#-
    post_hooks of the incremental marts: the write log, marts.as_of_writes, one row per
    build of a mart (the model, the as-of range it rewrote, dbt's invocation id). Inside
    the model's transaction, after its insert, so a row is there exactly when the write
    it records committed. Readers that keep copies of a mart's rows (the training
    snapshots' columnar copies, churnops.features.copies) know from it whether a copy of
    an as-of date is still what the mart holds: any later build covering the date adds a
    row, whoever ran it (the nightly, a backfill, a Cosmos task, dbt by hand).
    `create table if not exists`: the log is created by the first build of a mart, on
    either engine; its rows are never updated or deleted.
-#}
{% macro as_of_writes_relation() -%}
    {{ this.schema }}.as_of_writes
{%- endmacro %}

{% macro create_as_of_writes() -%}
    create table if not exists {{ as_of_writes_relation() }} (
        model varchar not null,
        as_of_start date not null,
        as_of_end date not null,
        invocation_id varchar not null,
        written_at timestamp not null
    )
{%- endmacro %}

{% macro record_as_of_write(offset_days=0) -%}
    insert into {{ as_of_writes_relation() }}
        (model, as_of_start, as_of_end, invocation_id, written_at)
    values (
        '{{ this.identifier }}',
        {{ as_of_start(offset_days) }},
        {{ as_of_end(offset_days) }},
        '{{ invocation_id }}',
        current_timestamp
    )
{%- endmacro %}


{#- The label's column, named by its horizon: written by fct_churn_labels, counted here. -#}
{% macro label_column() -%}
    churned_within_{{ var('label_horizon_days') }}d
{%- endmacro %}


{#-
    post_hooks of fct_churn_labels: marts.label_counts, the labelled rows and churners of
    each as-of date, kept in the build's transaction. A training plans its snapshots on
    these counts (churnops.features.store: labelled_snapshot_rows) instead of counting
    every label row it holds (at 500,000 customers a day, hundreds of millions after a
    year and a half: PostgreSQL took 1.2-1.6 s over 15 dates already). Created from the
    whole labels table by the first build that finds it missing (so labels built before
    it are counted too), then each build replaces its own range's counts.
-#}
{% macro label_counts_relation() -%}
    {{ this.schema }}.label_counts
{%- endmacro %}

{% macro label_counts_of(where='true') -%}
    select
        as_of_date,
        cast(count(*) as bigint) as labelled_rows,
        cast(sum({{ label_column() }}) as bigint) as churners
    from {{ this }}
    where {{ where }}
    group by as_of_date
{%- endmacro %}

{% macro create_label_counts() -%}
    create table if not exists {{ label_counts_relation() }} as
    {{ label_counts_of() }}
{%- endmacro %}

{% macro delete_label_counts(offset_days=0) -%}
    delete from {{ label_counts_relation() }}
    where {{ in_as_of_range(offset_days) }}
{%- endmacro %}

{% macro record_label_counts(offset_days=0) -%}
    insert into {{ label_counts_relation() }} (as_of_date, labelled_rows, churners)
    {{ label_counts_of(in_as_of_range(offset_days)) }}
{%- endmacro %}
