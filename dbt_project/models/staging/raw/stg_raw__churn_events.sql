with

source as (

    select * from {{ source('raw', 'churn_events') }}

),

final as (

    select
        -- keys
        cast(customer_id as bigint) as customer_id,

        -- churn
        cast(churn_date as date) as churn_date,
        cast(reason as varchar) as churn_reason,

        -- lineage
        cast(_drop_date as date) as drop_date,
        cast(_source_file as varchar) as source_file,
        cast(_loaded_at as timestamp) as loaded_at

    from source

)

select * from final
