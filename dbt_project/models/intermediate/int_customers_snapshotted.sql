{#-
    Who is a customer on each as-of date D, and their record as of D: the latest
    customers row with effective_date <= D. Active on D means signed up on or before D and
    not churned on or before D. Plan and payment-method changes are counted over the 90
    days ending on D, comparing each record with the customer's previous record (so a
    record that changes both counts for both, whatever its change_type says).
-#}

with

as_of_dates as (

    select as_of_date from {{ ref('int_as_of_dates') }}

),

customer_records as (

    select
        customer_id,
        effective_date,
        signup_date,
        plan_type,
        payment_method,
        acquisition_channel,
        region,
        monthly_fee_eur,
        is_promo
    from {{ ref('stg_raw__customers') }}
    where
        effective_date <= {{ as_of_end() }}
        and drop_date <= {{ as_of_end() }}

),

churn_events as (

    select
        customer_id,
        churn_date
    from {{ ref('int_churn_events_known') }}

),

records_sequenced as (

    -- Looking ahead (lead) only decides which past record is the latest as of D; it never
    -- lets a record dated after D into D's row.
    select
        *,
        coalesce(
            lead(effective_date) over by_customer, cast('9999-12-31' as date)
        ) as valid_until,
        lag(plan_type) over by_customer as previous_plan_type,
        lag(payment_method) over by_customer as previous_payment_method
    from customer_records
    window by_customer as (partition by customer_id order by effective_date)

),

record_changes as (

    select
        customer_id,
        effective_date,
        case when plan_type <> previous_plan_type then 1 else 0 end as is_plan_change,
        case
            when {{ plan_rank('plan_type') }} < {{ plan_rank('previous_plan_type') }} then 1
            else 0
        end as is_plan_downgrade,
        case
            when payment_method <> previous_payment_method then 1 else 0
        end as is_payment_method_change
    from records_sequenced
    where
        effective_date >= {{ as_of_start(-89) }}
        and (plan_type <> previous_plan_type or payment_method <> previous_payment_method)

),

changes_last_90_days as (

    select
        as_of_dates.as_of_date,
        record_changes.customer_id,
        cast(sum(record_changes.is_plan_change) as integer) as plan_changes_90d,
        cast(sum(record_changes.is_plan_downgrade) as integer) as plan_downgrades_90d,
        cast(
            sum(record_changes.is_payment_method_change) as integer
        ) as payment_method_changes_90d
    from as_of_dates
    inner join record_changes
        on
            record_changes.effective_date > as_of_dates.as_of_date - 90
            and record_changes.effective_date <= as_of_dates.as_of_date
    group by as_of_dates.as_of_date, record_changes.customer_id

),

records_as_of as (

    select
        as_of_dates.as_of_date,
        records_sequenced.customer_id,
        records_sequenced.signup_date,
        records_sequenced.plan_type,
        records_sequenced.payment_method,
        records_sequenced.acquisition_channel,
        records_sequenced.region,
        records_sequenced.monthly_fee_eur,
        records_sequenced.is_promo
    from as_of_dates
    inner join records_sequenced
        on
            records_sequenced.effective_date <= as_of_dates.as_of_date
            and records_sequenced.valid_until > as_of_dates.as_of_date

),

active_customers as (

    select records_as_of.*
    from records_as_of
    left join churn_events
        on records_as_of.customer_id = churn_events.customer_id
    where
        records_as_of.signup_date <= records_as_of.as_of_date
        and (
            churn_events.churn_date is null
            or churn_events.churn_date > records_as_of.as_of_date
        )

),

final as (

    select
        active_customers.as_of_date,
        active_customers.customer_id,
        active_customers.signup_date,
        active_customers.plan_type,
        active_customers.payment_method,
        active_customers.region,
        active_customers.acquisition_channel,
        active_customers.monthly_fee_eur,
        active_customers.is_promo,
        coalesce(changes_last_90_days.plan_changes_90d, 0) as plan_changes_90d,
        coalesce(changes_last_90_days.plan_downgrades_90d, 0) as plan_downgrades_90d,
        coalesce(
            changes_last_90_days.payment_method_changes_90d, 0
        ) as payment_method_changes_90d
    from active_customers
    left join changes_last_90_days
        on
            active_customers.as_of_date = changes_last_90_days.as_of_date
            and active_customers.customer_id = changes_last_90_days.customer_id

)

select * from final
