with

source as (

    select * from {{ source('raw', 'payments') }}

),

final as (

    select
        -- keys
        cast(payment_id as varchar) as payment_id,
        cast(invoice_id as varchar) as invoice_id,
        cast(customer_id as bigint) as customer_id,

        -- payment
        cast(paid_date as date) as paid_date,
        cast(amount_paid as double precision) as amount_paid_eur,

        -- lineage
        cast(_drop_date as date) as drop_date,
        cast(_source_file as varchar) as source_file,
        cast(_loaded_at as timestamp) as loaded_at

    from source

)

select * from final
