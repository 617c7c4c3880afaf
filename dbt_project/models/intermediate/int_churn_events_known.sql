{#-
    The churn events the run knows: each customer's churn date, read from the rows dated
    and dropped on or before as_of_end, so no as-of date ever sees a later cancellation.
    The active customers of each as-of date and the churn labels are both cut from it.
-#}

with

churn_events as (

    select
        customer_id,
        churn_date
    from {{ ref('stg_raw__churn_events') }}
    where
        churn_date <= {{ as_of_end() }}
        and drop_date <= {{ as_of_end() }}

),

final as (

    -- A customer churns at most once (tested on staging); min() keeps one row per
    -- customer even if a source ever sent two.
    select
        customer_id,
        min(churn_date) as churn_date
    from churn_events
    group by customer_id

)

select * from final
