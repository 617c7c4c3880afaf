{#-
    Every non-null value of every column in `columns` lies in [min_value, max_value]
    (either bound may be omitted). One query for many columns: a feature table with
    dozens of counts stays one test instead of dozens. Failing rows name the column.
    The model is read once, for the rows with any value out of range (none, when the
    test passes), and only those are split by column: a union of one scan per column
    read the night's 500,000 feature rows 30 times on PostgreSQL (3.6 s of the build at
    100,000 customers against DuckDB's 0.3 s).
-#}
{% macro column_out_of_range(column, min_value, max_value) -%}
    {{ column }} is not null
    and (
        false
        {%- if min_value is not none %} or {{ column }} < {{ min_value }}{% endif %}
        {%- if max_value is not none %} or {{ column }} > {{ max_value }}{% endif %}
    )
{%- endmacro %}

{% test columns_in_range(model, columns, min_value=none, max_value=none) %}

with

rows_out_of_range as (

    select
        {%- for column in columns %}
        {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ model }}
    where
        false
        {%- for column in columns %}
        or ({{ column_out_of_range(column, min_value, max_value) }})
        {%- endfor %}

)

{% for column in columns %}
select
    '{{ column }}' as column_name,
    cast({{ column }} as double precision) as value
from rows_out_of_range
where {{ column_out_of_range(column, min_value, max_value) }}
{% if not loop.last %}union all{% endif %}
{% endfor %}

{% endtest %}
