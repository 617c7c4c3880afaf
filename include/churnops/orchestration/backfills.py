"""What a ``airflow backfill create`` that lost SQLite's lock left behind, and what to do next.

Airflow commits a backfill's row before it creates the backfill's runs, and the command can
lose the SQLite metadata DB's lock to a busy scheduler at any write. The error alone does not
tell what happened. The command might have failed before the backfill existed. It might have
left it half-created: a runless backfill that refuses the next one ("AlreadyRunningBackfill")
until the scheduler closes it, 2 minutes later. Or the backfill and its runs were committed
after all. Retrying blindly is wrong in two of the three cases: it meets its own leftover, or
it reprocesses the nights a second time.

So after a lost lock the metadata DB is read (:func:`open_backfills`, run with the project's
Airflow environment through ``python -m churnops.orchestration.backfills``) and
:func:`after_a_lost_lock` decides, with its reason.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

# A backfill created this long before the command's first try began is not that command's
# own: the two clocks are one machine's, the margin covers the rounding of stored times.
CLOCK_MARGIN = dt.timedelta(seconds=5)


@dataclass(frozen=True)
class OpenBackfill:
    """A backfill of the DAG that Airflow has not closed (``completed_at`` unset)."""

    id: int
    from_date: dt.datetime
    to_date: dt.datetime
    created_at: dt.datetime
    reprocess_behavior: str
    run_states: list[str] = field(default_factory=list)

    def describe(self) -> str:
        runs = ", ".join(self.run_states) if self.run_states else "no runs"
        return (
            f"backfill {self.id} of {self.from_date:%Y-%m-%d}..{self.to_date:%Y-%m-%d} "
            f"(reprocess {self.reprocess_behavior}, created {self.created_at:%H:%M:%S} UTC; "
            f"{runs})"
        )

    @classmethod
    def from_json(cls, row: dict) -> OpenBackfill:
        return cls(
            id=int(row["id"]),
            from_date=dt.datetime.fromisoformat(row["from_date"]),
            to_date=dt.datetime.fromisoformat(row["to_date"]),
            created_at=dt.datetime.fromisoformat(row["created_at"]),
            reprocess_behavior=str(row["reprocess_behavior"]),
            run_states=[str(s) for s in row.get("run_states", [])],
        )


@dataclass(frozen=True)
class Requested:
    """The backfill the command asked for, and when its first try began (UTC)."""

    from_date: dt.datetime
    to_date: dt.datetime
    reprocess_behavior: str
    first_try_at: dt.datetime


Action = Literal["created", "discard_and_retry", "retry", "blocked"]


@dataclass(frozen=True)
class AfterLostLock:
    action: Action
    reason: str
    backfill_id: int | None = None


def after_a_lost_lock(requested: Requested, open_ones: Sequence[OpenBackfill]) -> AfterLostLock:
    """What to do after ``airflow backfill create`` lost the metadata DB's lock.

    - no open backfill: nothing of the command stayed; try again.
    - the command's own backfill (same range and reprocess behaviour, created since its first
      try) with runs: Airflow created it; done, not created a second time.
    - its own backfill without runs: half-created; it is discarded, then tried again (the
      scheduler would only close it 2 minutes later).
    - anyone else's open backfill: Airflow's one-backfill-per-DAG rule refuses; say which.
    """
    if not open_ones:
        return AfterLostLock("retry", "no backfill of the DAG is open: nothing stayed")
    for backfill in open_ones:
        own = (
            backfill.created_at >= requested.first_try_at - CLOCK_MARGIN
            and _day(backfill.from_date) == _day(requested.from_date)
            and _day(backfill.to_date) == _day(requested.to_date)
            and backfill.reprocess_behavior == requested.reprocess_behavior
        )
        if not own:
            continue
        if backfill.run_states:
            return AfterLostLock(
                "created",
                f"Airflow created {backfill.describe()} although its command lost the lock",
                backfill.id,
            )
        return AfterLostLock(
            "discard_and_retry",
            f"{backfill.describe()} was left half-created by the lost lock",
            backfill.id,
        )
    blocking = "; ".join(b.describe() for b in open_ones)
    return AfterLostLock("blocked", f"another backfill of the DAG is open: {blocking}")


def _day(moment: dt.datetime) -> dt.date:
    """The UTC day of a stored bound (Airflow keeps the bounds it was given as instants)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return aware.astimezone(dt.UTC).date()


# --- run inside the Airflow environment (python -m churnops.orchestration.backfills) ---


def open_backfills(dag_id: str) -> list[dict]:
    """The DAG's open backfills and the states of their runs, from the metadata DB."""
    from airflow.models.backfill import Backfill
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    rows = []
    with create_session() as session:
        found = session.scalars(
            select(Backfill)
            .where(Backfill.dag_id == dag_id, Backfill.completed_at.is_(None))
            .order_by(Backfill.id)
        ).all()
        for backfill in found:
            states: Sequence[object] = session.scalars(
                select(DagRun.state).where(DagRun.backfill_id == backfill.id)
            ).all()
            rows.append(
                asdict(
                    OpenBackfill(
                        id=backfill.id,
                        from_date=backfill.from_date,
                        to_date=backfill.to_date,
                        created_at=backfill.created_at,
                        # a str enum just created, or its value read back
                        reprocess_behavior=str(
                            getattr(
                                backfill.reprocess_behavior, "value", backfill.reprocess_behavior
                            )
                        ),
                        run_states=[str(getattr(s, "value", s)) for s in states],
                    )
                )
            )
    return rows


def discard_runless_backfill(backfill_id: int) -> str:
    """Remove a backfill that has no runs, as Airflow's own cleanup after a lock error does
    (``_cleanup_partial_backfill``). What happened: ``discarded`` (or already gone),
    ``has_runs`` (it got its runs meanwhile: left alone, it is created) or ``closed`` (the
    scheduler closed it meanwhile: nothing blocks any more)."""
    from airflow.models.backfill import Backfill, BackfillDagRun
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import delete, exists, select

    with create_session() as session:
        has_runs = session.scalar(select(exists().where(DagRun.backfill_id == backfill_id)))
        backfill = session.get(Backfill, backfill_id)
        if backfill is None:
            return "discarded"
        if has_runs:
            return "has_runs"
        if backfill.completed_at is not None:
            return "closed"
        session.execute(delete(BackfillDagRun).where(BackfillDagRun.backfill_id == backfill_id))
        session.delete(backfill)
    return "discarded"


def main(argv: Sequence[str] | None = None) -> int:
    """``open DAG_ID`` prints the open backfills as JSON; ``discard ID`` removes a runless
    one and prints what happened (:func:`discard_runless_backfill`) as a JSON string."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] not in {"open", "discard"}:
        print("usage: python -m churnops.orchestration.backfills open DAG_ID | discard ID")
        return 2
    if args[0] == "open":
        print(json.dumps(open_backfills(args[1]), default=str))
    else:
        print(json.dumps(discard_runless_backfill(int(args[1]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
