with

source as (

    select * from {{ source('raw', 'usage_daily') }}

),

final as (

    select
        -- keys
        cast(customer_id as bigint) as customer_id,
        cast(usage_date as date) as usage_date,

        -- usage of the day
        cast(calls as integer) as calls,
        cast(data_gb as double precision) as data_gb,
        cast(logins as integer) as logins,
        cast(session_minutes as double precision) as session_minutes,
        cast(features_used as integer) as features_used,

        -- lineage
        cast(_drop_date as date) as drop_date,
        cast(_source_file as varchar) as source_file,
        cast(_loaded_at as timestamp) as loaded_at

    from source

)

select * from final
