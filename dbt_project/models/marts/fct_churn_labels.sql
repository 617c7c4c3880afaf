{#-
    Churn labels whose 90-day window has closed (90: the var label_horizon_days, the
    constant churnops.settings.LABEL_HORIZON_DAYS; the label column's name carries it).
    A run for [as_of_start, as_of_end] writes the labels of the as-of dates
    [as_of_start - 90, as_of_end - 90]: the windows that close on the days of the run. The
    population is the customers active on the as-of date (the rows of
    fct_customer_features), the label is 1 when churn_date falls in (as_of_date,
    as_of_date + 90] - day 90 in, day 91 out. Only the churn events known by as_of_end are
    read (int_churn_events_known), so a label never uses a day the run did not know.
    Like fct_customer_features, the pre_hook deletes the range the run writes, the new rows
    are appended (`append`), and each build is recorded in marts.as_of_writes (post_hooks);
    the post_hooks also keep each date's labelled rows and churners in marts.label_counts
    (macros/as_of.sql), which trainings plan their snapshots on.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ delete_as_of_range(-var('label_horizon_days')) }}",
        post_hook=[
            "{{ create_as_of_writes() }}",
            "{{ record_as_of_write(-var('label_horizon_days')) }}",
            "{{ create_label_counts() }}",
            "{{ delete_label_counts(-var('label_horizon_days')) }}",
            "{{ record_label_counts(-var('label_horizon_days')) }}"
        ],
        on_schema_change='append_new_columns',
        full_refresh=false,
        indexes=mart_indexes()
    )
}}

with

features as (

    select
        as_of_date,
        customer_id
    from {{ ref('fct_customer_features') }}
    where {{ in_as_of_range(-var('label_horizon_days')) }}

),

churn_events as (

    select
        customer_id,
        churn_date
    from {{ ref('int_churn_events_known') }}

),

labelled as (

    select
        features.as_of_date,
        features.customer_id,
        features.as_of_date + {{ var('label_horizon_days') }} as label_window_end,
        case
            when
                churn_events.churn_date > features.as_of_date
                and churn_events.churn_date <= features.as_of_date + {{ var('label_horizon_days') }}
                then churn_events.churn_date
        end as churn_date
    from features
    left join churn_events
        on features.customer_id = churn_events.customer_id

),

final as (

    select
        as_of_date,
        customer_id,
        cast(case when churn_date is not null then 1 else 0 end as integer)
            as {{ label_column() }},
        churn_date,
        label_window_end
    from labelled

)

select * from final
