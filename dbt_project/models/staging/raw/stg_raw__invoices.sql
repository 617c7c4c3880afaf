with

source as (

    select * from {{ source('raw', 'invoices') }}

),

final as (

    select
        -- keys
        cast(invoice_id as varchar) as invoice_id,
        cast(customer_id as bigint) as customer_id,

        -- dates
        cast(invoice_date as date) as invoice_date,
        cast(due_date as date) as due_date,

        -- amounts
        cast(plan_type as varchar) as plan_type,
        cast(list_amount as double precision) as list_amount_eur,
        cast(discount_amount as double precision) as discount_amount_eur,
        cast(amount_due as double precision) as amount_due_eur,
        cast(currency as varchar) as currency,

        -- lineage
        cast(_drop_date as date) as drop_date,
        cast(_source_file as varchar) as source_file,
        cast(_loaded_at as timestamp) as loaded_at

    from source

)

select * from final
