"""A deterministic raw layer written straight into DuckDB with SQL, for dbt benchmarks.

The dbt tests use the real simulator (``churnops.simulate``). This generator exists for
measuring dbt at production scale (500,000 customers), where it writes 100 days of drops
in about a minute. It follows the raw layout of ``churnops.ingest.store``: the contract's
columns plus ``_drop_date``, ``_source_file`` and ``_loaded_at``, every row's event date
equal to its drop day, and one ``raw._loaded_drops`` row per table per day. Its behaviour
is crude (uniform random usage): use it for timings, not for model quality.

    python -m tests.dbt.synthetic_raw /tmp/big.duckdb --customers 500000 --days 100
    CHURNOPS_DUCKDB_PATH=/tmp/big.duckdb dbt build --project-dir dbt_project \
        --profiles-dir dbt_project --vars '{as_of_date: 2025-04-10}'
"""

from __future__ import annotations

import datetime as dt

import duckdb
import sqlalchemy as sa
from duckdb_engine import Dialect

from churnops.contracts import LANDING_TABLES
from churnops.ingest.store import LOADED_DROPS, LOADED_DROPS_TABLE, RAW_SCHEMA, raw_table

_PLANS = "['basic', 'standard', 'premium']"
_PLAN_FEES = "[19.0, 39.0, 69.0]"
_METHODS = "['card', 'direct_debit', 'paypal', 'invoice']"
_CHANNELS = "['organic', 'paid_search', 'social', 'referral', 'partner', 'campaign']"
_REGIONS = "['north', 'south', 'east', 'west', 'central']"


def ensure_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    """The raw layer's tables, with the DDL the warehouse's RawStore creates them with."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
    for table in (LOADED_DROPS, *(raw_table(name) for name in LANDING_TABLES)):
        ddl = sa.schema.CreateTable(table, if_not_exists=True).compile(dialect=Dialect())
        con.execute(str(ddl))


def generate_raw(
    con: duckdb.DuckDBPyConnection,
    customers: int,
    start: dt.date,
    days: int,
    seed: int = 7,
) -> None:
    """Fill ``raw.*`` with ``days`` daily drops from ``start`` for about ``customers`` people.

    Nine in ten customers exist before ``start`` (sent as the first day's snapshot), the
    rest sign up during the period; about one in seven churns; some change plan or payment
    method once; invoices every 30 days of tenure, due 14 days later, some paid late, a few
    never; about one support ticket per customer per 60 days.
    """
    con.execute("set enable_progress_bar = false")
    ensure_raw_schema(con)
    end = start + dt.timedelta(days=days - 1)
    literals = {
        "$start": f"date '{start.isoformat()}'",
        "$end": f"date '{end.isoformat()}'",
        "$n": str(customers),
        "$days": str(days),
    }

    def run(sql: str) -> None:
        for name, literal in literals.items():
            sql = sql.replace(name, literal)
        con.execute(sql)

    # h(x, salt): a deterministic pseudo-random integer in [0, 1_000_000).
    run(
        "create or replace temp macro h(x, salt) as "
        "cast(hash(x, salt, getvariable('seed')) % 1000000 as bigint)"
    )
    run(f"set variable seed = {int(seed)}")
    run(
        f"""
        create or replace temp table people as
        with ids as (select range as customer_id from range(1, $n + 1))
        select
            customer_id,
            case when h(customer_id, 'new') < 900000
                then $start - cast(1 + h(customer_id, 'age') % 1200 as integer)
                else $start + cast(1 + h(customer_id, 'su') % ($days - 1) as integer)
            end as signup_date,
            {_PLANS}[1 + h(customer_id, 'plan') % 3] as plan_type,
            {_PLANS}[1 + h(customer_id, 'plan2') % 3] as new_plan_type,
            {_METHODS}[1 + h(customer_id, 'pay') % 4] as payment_method,
            {_METHODS}[1 + h(customer_id, 'pay2') % 4] as new_payment_method,
            {_CHANNELS}[1 + h(customer_id, 'chan') % 6] as acquisition_channel,
            {_REGIONS}[1 + h(customer_id, 'reg') % 5] as region,
            h(customer_id, 'promo') < 200000 as is_promo,
            case when h(customer_id, 'pc') < 150000
                then $start + cast(1 + h(customer_id, 'pcd') % ($days - 1) as integer)
            end as plan_change_date,
            case when h(customer_id, 'mc') < 100000
                then $start + cast(1 + h(customer_id, 'mcd') % ($days - 1) as integer)
            end as payment_change_date,
            case when h(customer_id, 'churn') < 150000
                then $start + cast(1 + h(customer_id, 'cd') % ($days - 1) as integer)
            end as churn_date,
            $start as feed_start
        from ids
        """
    )
    # Churn must come after sign-up; changes must fall while the customer is a customer.
    run(
        """
        update people set
            churn_date = case when churn_date > signup_date then churn_date end,
            plan_change_date = case
                when plan_change_date > signup_date
                 and (churn_date is null or plan_change_date < churn_date)
                 and plan_change_date <> coalesce(payment_change_date, date '1900-01-01')
                then plan_change_date end,
            payment_change_date = case
                when payment_change_date > signup_date
                 and (churn_date is null or payment_change_date < churn_date)
                then payment_change_date end
        """
    )
    run(
        """
        update people set churn_date = null
        where churn_date is not null and churn_date <= signup_date
        """
    )
    run(
        "create or replace temp table calendar as "
        "select cast(d as date) as day from range(cast($start as timestamp), cast($end as timestamp) "
        "+ interval 1 day, interval 1 day) as t(d)"
    )
    lineage = (
        "day as _drop_date, '{table}/dt=' || strftime(day, '%Y-%m-%d') || '/part-0.parquet' "
        "as _source_file, timestamp '2025-01-01 03:00:00' as _loaded_at"
    )

    def fee(plan: str) -> str:
        return f"{_PLAN_FEES}[list_position({_PLANS}, {plan})]"

    run(
        f"""
        insert into raw.customers
        with records as (
            select customer_id, feed_start as day, 'snapshot' as change_type,
                   plan_type, payment_method
            from people where signup_date < feed_start
            union all
            select customer_id, signup_date, 'signup', plan_type, payment_method
            from people where signup_date >= feed_start
            union all
            select customer_id, plan_change_date, 'plan_change', new_plan_type,
                   case when payment_change_date <= plan_change_date
                        then new_payment_method else payment_method end
            from people where plan_change_date is not null
            union all
            select customer_id, payment_change_date, 'payment_change',
                   case when plan_change_date <= payment_change_date
                        then new_plan_type else plan_type end,
                   new_payment_method
            from people where payment_change_date is not null
        )
        select r.customer_id, r.day as effective_date, r.change_type, p.signup_date,
               r.plan_type, r.payment_method, p.acquisition_channel, p.region,
               {fee("r.plan_type")} as monthly_fee, p.is_promo,
               {lineage.format(table="customers")}
        from records r join people p using (customer_id)
        order by r.day, r.customer_id
        """
    )
    run(
        f"""
        insert into raw.usage_daily
        select p.customer_id, c.day as usage_date,
               cast(h(p.customer_id * 100000 + (c.day - date '2000-01-01'), 'calls') % 25 as integer),
               round((h(p.customer_id * 100000 + (c.day - date '2000-01-01'), 'gb') % 5000) / 1000.0, 3),
               cast(h(p.customer_id * 100000 + (c.day - date '2000-01-01'), 'log') % 4 as integer),
               round((h(p.customer_id * 100000 + (c.day - date '2000-01-01'), 'min') % 9000) / 100.0, 2),
               cast(h(p.customer_id * 100000 + (c.day - date '2000-01-01'), 'feat') % 13 as integer),
               {lineage.format(table="usage_daily")}
        from calendar c join people p
          on p.signup_date <= c.day and (p.churn_date is null or p.churn_date > c.day)
        order by c.day, p.customer_id
        """
    )
    run(
        """
        create or replace temp table invoices_all as
        select 'inv-' || p.customer_id || '-' || strftime(c.day, '%Y%m%d') as invoice_id,
               p.customer_id, c.day as invoice_date, c.day + 14 as due_date,
               coalesce(case when c.day >= p.plan_change_date then p.new_plan_type end,
                        p.plan_type) as plan_type,
               p.is_promo and (c.day - p.signup_date) <= 90 as discounted
        from calendar c join people p
          on p.signup_date < c.day and (p.churn_date is null or p.churn_date > c.day)
         and (c.day - p.signup_date) % 30 = 0
        """
    )
    run(
        f"""
        insert into raw.invoices
        select invoice_id, customer_id, invoice_date, due_date, plan_type,
               {fee("plan_type")} as list_amount,
               case when discounted then 5.0 else 0.0 end as discount_amount,
               {fee("plan_type")} - case when discounted then 5.0 else 0.0 end as amount_due,
               'EUR' as currency,
               {lineage.format(table="invoices").replace("day", "invoice_date")}
        from invoices_all order by invoice_date, invoice_id
        """
    )
    run(
        f"""
        insert into raw.payments
        with paid as (
            select i.*, i.invoice_date + cast(h(i.customer_id, i.invoice_id) % 24 as integer) as day,
                   cast(
                       {fee("i.plan_type")} - case when i.discounted then 5.0 else 0.0 end
                   as double) as amount
            from invoices_all i
            where h(i.customer_id, i.invoice_id || 'unpaid') >= 40000
        )
        select 'pay-' || invoice_id, invoice_id, customer_id, day as paid_date, amount,
               {lineage.format(table="payments")}
        from paid where day <= $end
        order by day, invoice_id
        """
    )
    run(
        f"""
        insert into raw.support_tickets
        select 'tkt-' || p.customer_id || '-' || strftime(c.day, '%Y%m%d'), p.customer_id,
               c.day + to_seconds(h(p.customer_id * 100000 + (c.day - date '2000-01-01'), 'sec') % 86400),
               ['billing', 'technical', 'account', 'cancellation'][
                   1 + h(p.customer_id * 100000 + (c.day - date '2000-01-01'), 'cat') % 4],
               ['low', 'medium', 'high'][
                   1 + h(p.customer_id * 100000 + (c.day - date '2000-01-01'), 'pri') % 3],
               ['phone', 'email', 'chat'][
                   1 + h(p.customer_id * 100000 + (c.day - date '2000-01-01'), 'ch') % 3],
               {lineage.format(table="support_tickets")}
        from calendar c join people p
          on p.signup_date <= c.day and (p.churn_date is null or p.churn_date > c.day)
        where h(p.customer_id * 100000 + (c.day - date '2000-01-01'), 'tkt') < 16000
        order by c.day
        """
    )
    run(
        f"""
        insert into raw.churn_events
        select customer_id, churn_date,
               ['price', 'service', 'competitor', 'moved', 'other'][1 + h(customer_id, 'why') % 5],
               {lineage.format(table="churn_events").replace("day", "churn_date")}
        from people where churn_date is not null and churn_date <= $end
        order by churn_date
        """
    )
    for table in LANDING_TABLES:
        run(
            f"""
            insert or replace into {LOADED_DROPS_TABLE}
            select '{table}', c.day, count(t._drop_date),
                   '{table}/dt=' || strftime(c.day, '%Y-%m-%d') || '/part-0.parquet',
                   timestamp '2025-01-01 03:00:00'
            from calendar c left join raw.{table} t on t._drop_date = c.day
            group by c.day
            """
        )


def main() -> None:
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("warehouse", type=Path, help="DuckDB file to create (must not exist)")
    parser.add_argument("--customers", type=int, default=500_000)
    parser.add_argument("--days", type=int, default=100)
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2025, 1, 1))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.warehouse.exists():
        parser.error(f"{args.warehouse} exists")
    con = duckdb.connect(str(args.warehouse))
    try:
        generate_raw(con, args.customers, args.start, args.days, args.seed)
    finally:
        con.close()


if __name__ == "__main__":
    main()
