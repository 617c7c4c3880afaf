{#-
    Every non-null value lies in [min_value, max_value] (either bound may be omitted): the
    one-column case of columns_in_range, by its condition (column_out_of_range).
-#}
{% test accepted_range(model, column_name, min_value=none, max_value=none) %}

select {{ column_name }}
from {{ model }}
where {{ column_out_of_range(column_name, min_value, max_value) }}

{% endtest %}
