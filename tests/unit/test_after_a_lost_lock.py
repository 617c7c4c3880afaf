"""The decision after ``airflow backfill create`` lost SQLite's lock: what the metadata DB
holds says whether the command's backfill was created, half-created or never made."""

from __future__ import annotations

import datetime as dt

import pytest

from churnops.orchestration.backfills import OpenBackfill, Requested, after_a_lost_lock

pytestmark = pytest.mark.unit

UTC = dt.UTC
FIRST_TRY = dt.datetime(2026, 12, 6, 17, 0, 0, tzinfo=UTC)
REQUESTED = Requested(
    from_date=dt.datetime(2026, 2, 27, tzinfo=UTC),
    to_date=dt.datetime(2026, 2, 27, 23, 59, 59, tzinfo=UTC),
    reprocess_behavior="completed",
    first_try_at=FIRST_TRY,
)


def backfill(
    backfill_id: int = 7,
    created: dt.datetime = FIRST_TRY + dt.timedelta(seconds=1),
    runs: tuple[str, ...] = (),
    day: dt.date = dt.date(2026, 2, 27),
    reprocess: str = "completed",
) -> OpenBackfill:
    return OpenBackfill(
        id=backfill_id,
        from_date=dt.datetime.combine(day, dt.time(), tzinfo=UTC),
        to_date=dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=UTC),
        created_at=created,
        reprocess_behavior=reprocess,
        run_states=list(runs),
    )


def test_nothing_open_means_nothing_stayed_and_the_command_is_tried_again() -> None:
    verdict = after_a_lost_lock(REQUESTED, [])
    assert verdict.action == "retry" and verdict.backfill_id is None


def test_its_own_backfill_with_runs_was_created_and_is_not_made_twice() -> None:
    verdict = after_a_lost_lock(REQUESTED, [backfill(runs=("queued",))])
    assert verdict.action == "created" and verdict.backfill_id == 7
    assert "backfill 7 of 2026-02-27..2026-02-27" in verdict.reason
    assert "queued" in verdict.reason


def test_its_own_backfill_without_runs_is_half_created_and_discarded() -> None:
    verdict = after_a_lost_lock(REQUESTED, [backfill()])
    assert verdict.action == "discard_and_retry" and verdict.backfill_id == 7
    assert "no runs" in verdict.reason and "half-created" in verdict.reason


@pytest.mark.parametrize(
    "other",
    [
        # begun before this command's first try: someone else's
        backfill(created=FIRST_TRY - dt.timedelta(minutes=3), runs=("running",)),
        # another range
        backfill(day=dt.date(2026, 2, 26), runs=("running",)),
        # another reprocess behaviour
        backfill(reprocess="none"),
    ],
    ids=["older", "other-range", "other-reprocess"],
)
def test_anyone_elses_open_backfill_blocks_and_is_named(other: OpenBackfill) -> None:
    verdict = after_a_lost_lock(REQUESTED, [other])
    assert verdict.action == "blocked" and verdict.backfill_id is None
    assert "another backfill of the DAG is open: backfill 7" in verdict.reason


def test_bounds_stored_in_another_offset_are_the_same_days() -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    stored = OpenBackfill(
        id=3,
        from_date=dt.datetime(2026, 2, 27, 2, 0, tzinfo=plus_two),
        to_date=dt.datetime(2026, 2, 28, 1, 59, 59, tzinfo=plus_two),
        created_at=FIRST_TRY,
        reprocess_behavior="completed",
        run_states=["success"],
    )
    assert after_a_lost_lock(REQUESTED, [stored]).action == "created"


def test_a_row_read_back_from_json_keeps_its_fields() -> None:
    row = {
        "id": 5,
        "from_date": "2026-02-27 00:00:00+00:00",
        "to_date": "2026-02-27 23:59:59+00:00",
        "created_at": "2026-12-06 17:07:00.984087+00:00",
        "reprocess_behavior": "completed",
        "run_states": ["running"],
    }
    seen = OpenBackfill.from_json(row)
    assert seen.id == 5 and seen.run_states == ["running"]
    assert seen.created_at.tzinfo is not None and seen.to_date.hour == 23
