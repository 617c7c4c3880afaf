with

source as (

    select * from {{ source('raw', '_loaded_drops') }}

),

final as (

    select
        -- keys
        cast(table_name as varchar) as table_name,
        cast(drop_date as date) as drop_date,

        -- partition
        cast(row_count as bigint) as row_count,
        cast(source_files as varchar) as source_files,
        cast(loaded_at as timestamp) as loaded_at

    from source

)

select * from final
