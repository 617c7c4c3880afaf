with

source as (

    select * from {{ source('raw', 'customers') }}

),

final as (

    select
        -- keys
        cast(customer_id as bigint) as customer_id,
        cast(effective_date as date) as effective_date,

        -- record
        cast(change_type as varchar) as change_type,
        cast(signup_date as date) as signup_date,
        cast(plan_type as varchar) as plan_type,
        cast(payment_method as varchar) as payment_method,
        cast(acquisition_channel as varchar) as acquisition_channel,
        cast(region as varchar) as region,
        cast(monthly_fee as double precision) as monthly_fee_eur,
        cast(is_promo as boolean) as is_promo,

        -- lineage
        cast(_drop_date as date) as drop_date,
        cast(_source_file as varchar) as source_file,
        cast(_loaded_at as timestamp) as loaded_at

    from source

)

select * from final
