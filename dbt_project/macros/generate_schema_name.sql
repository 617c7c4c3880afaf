{#-
    Models land in exactly the schema they are configured for (staging, intermediate,
    marts), not in "<target schema>_staging": the warehouse has one environment per
    database, and the scoring and monitoring code reads marts.* by name.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
