{#-
    Support tickets per active customer per as-of date D over (D-30, D] and (D-90, D].
    Tickets are sparse (a few per customer per year), so joining each as-of date to its
    90 days of tickets stays small even for a long bootstrap range.
-#}

with

active_customers as (

    select
        as_of_date,
        customer_id
    from {{ ref('int_customers_snapshotted') }}

),

as_of_dates as (

    select as_of_date from {{ ref('int_as_of_dates') }}

),

tickets as (

    -- A ticket belongs to the UTC day it was opened, which is its drop day (the validation
    -- gate loads a ticket only in its own day's drop; staging tests created_date =
    -- drop_date). So the drop_date bounds select the same rows by the partition key, which
    -- PostgreSQL indexes: without the lower one a night at the end of a long history reads
    -- every day of tickets loaded (tests/dbt/test_window_read_bounds.py).
    select
        customer_id,
        created_date,
        category
    from {{ ref('stg_raw__support_tickets') }}
    where
        created_date > {{ as_of_start(-90) }}
        and created_date <= {{ as_of_end() }}
        and drop_date <= {{ as_of_end() }}
        and drop_date > {{ as_of_start(-90) }}

),

tickets_windowed as (

    select
        as_of_dates.as_of_date,
        tickets.customer_id,
        count(*) filter (
            where tickets.created_date > as_of_dates.as_of_date - 30
        ) as support_tickets_30d,
        count(*) as support_tickets_90d,
        count(*) filter (where tickets.category = 'billing') as billing_tickets_90d,
        count(*) filter (where tickets.category = 'cancellation') as cancellation_tickets_90d,
        min(as_of_dates.as_of_date - tickets.created_date) as days_since_last_ticket
    from as_of_dates
    inner join tickets
        on
            tickets.created_date > as_of_dates.as_of_date - 90
            and tickets.created_date <= as_of_dates.as_of_date
    group by as_of_dates.as_of_date, tickets.customer_id

),

final as (

    select
        active_customers.as_of_date,
        active_customers.customer_id,
        cast(coalesce(tickets_windowed.support_tickets_30d, 0) as integer) as support_tickets_30d,
        cast(coalesce(tickets_windowed.support_tickets_90d, 0) as integer) as support_tickets_90d,
        cast(coalesce(tickets_windowed.billing_tickets_90d, 0) as integer) as billing_tickets_90d,
        cast(
            coalesce(tickets_windowed.cancellation_tickets_90d, 0) as integer
        ) as cancellation_tickets_90d,
        -- No ticket in the 90-day window: capped at 90.
        cast(
            coalesce(tickets_windowed.days_since_last_ticket, 90) as integer
        ) as days_since_last_ticket
    from active_customers
    left join tickets_windowed
        on
            active_customers.as_of_date = tickets_windowed.as_of_date
            and active_customers.customer_id = tickets_windowed.customer_id

)

select * from final
