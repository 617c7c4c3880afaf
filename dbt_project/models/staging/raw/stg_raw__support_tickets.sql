with

source as (

    select * from {{ source('raw', 'support_tickets') }}

),

final as (

    select
        -- keys
        cast(ticket_id as varchar) as ticket_id,
        cast(customer_id as bigint) as customer_id,

        -- when (UTC, no time zone in the source)
        cast(created_at as timestamp) as created_at,
        cast(created_at as date) as created_date,

        -- ticket
        cast(category as varchar) as category,
        cast(priority as varchar) as priority,
        cast(channel as varchar) as channel,

        -- lineage
        cast(_drop_date as date) as drop_date,
        cast(_source_file as varchar) as source_file,
        cast(_loaded_at as timestamp) as loaded_at

    from source

)

select * from final
