{#-
    Every non-null value of every column in `columns` lies in [min_value, max_value]
    (either bound may be omitted). One query for many columns: a feature table with
    dozens of counts stays one test instead of dozens. Failing rows name the column.
-#}
{% test columns_in_range(model, columns, min_value=none, max_value=none) %}

{% for column in columns %}
select
    '{{ column }}' as column_name,
    cast({{ column }} as double precision) as value
from {{ model }}
where
    {{ column }} is not null
    and (
        false
        {%- if min_value is not none %} or {{ column }} < {{ min_value }}{% endif %}
        {%- if max_value is not none %} or {{ column }} > {{ max_value }}{% endif %}
    )
{% if not loop.last %}union all{% endif %}
{% endfor %}

{% endtest %}
