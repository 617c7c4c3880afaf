{#- Small cross-database helpers: the same SQL must run on DuckDB and PostgreSQL. -#}

{#-
    Round a floating-point feature to `places` decimals and keep it double precision.
    Sums of doubles depend on the order the engine adds them in (parallel aggregation,
    window vs GROUP BY): rounding makes reruns and both computation paths identical.
    Both engines round through a decimal (PostgreSQL has round(numeric, int) only), so
    a double just below a rounding tie (x.xxxx4999999) rounds the same way on both.
    decimal(18, 10) is 64-bit on DuckDB (fast) and holds every feature's range (< 1e8);
    a value outside it fails the build on both engines instead of passing silently.
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
