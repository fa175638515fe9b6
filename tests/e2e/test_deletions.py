"""Deletion detection: the real sandbox over HTTP, real dlt runs into DuckDB and Postgres."""

from __future__ import annotations

from datetime import UTC, datetime

import dlt
import pytest

from octopush_dlt.errors import OctopushDeletionError
from octopush_dlt.runner import run_load
from octopush_provider.exceptions import OctopushConfigError
from tests.helpers import POSTGRES_URL, sandbox_source


def _flags(pipeline: dlt.Pipeline) -> dict[str, datetime | None]:
    """Each conversation's ``_octopush_deleted_at``."""
    with pipeline.sql_client() as client:
        rows = client.execute_sql("SELECT conversation_id, _octopush_deleted_at FROM conversations")
    return {cid: flag for cid, flag in rows}


def _flagged(pipeline: dlt.Pipeline) -> set[str]:
    return {cid for cid, flag in _flags(pipeline).items() if flag is not None}


def _oldest_ids(sandbox, n: int) -> list[str]:
    return [row["conversation_id"] for row in sandbox.store.snapshot()[-n:]]


def _flag_oldest(sandbox, pipeline: dlt.Pipeline, n: int) -> list[str]:
    """Load everything, delete the ``n`` oldest conversations, and run a detection."""
    run_load(pipeline, sandbox_source(sandbox))
    deleted = sandbox.store.delete(_oldest_ids(sandbox, n))
    run_load(pipeline, sandbox_source(sandbox, detect_deletes=True))
    return deleted


def test_deleted_conversations_are_flagged_with_the_run_time_and_only_those(
    make_sandbox, make_pipeline
):
    sandbox = make_sandbox(conversations=300)
    pipeline = make_pipeline()
    run_load(pipeline, sandbox_source(sandbox))
    snapshot = sandbox.store.snapshot()
    deleted = sandbox.store.delete([snapshot[3]["conversation_id"], *_oldest_ids(sandbox, 4)])
    before = datetime.now(UTC)

    summary = run_load(pipeline, sandbox_source(sandbox, detect_deletes=True))

    flags = _flags(pipeline)
    assert set(flags) == {row["conversation_id"] for row in snapshot}
    assert _flagged(pipeline) == set(deleted)
    stamps = {flags[cid] for cid in deleted}
    assert len(stamps) == 1
    (stamp,) = stamps
    assert before <= stamp <= datetime.now(UTC)
    assert summary.deletions == {
        "mode": "soft",
        "held": 300,
        "seen": 295,
        "marked": 5,
        "deleted_at": stamp.astimezone(UTC).isoformat(),
    }
    assert "5 flagged deleted" in "\n".join(summary.lines())


def test_a_conversation_that_comes_back_is_unflagged(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=200)
    pipeline = make_pipeline()
    deleted = _flag_oldest(sandbox, pipeline, 3)
    assert _flagged(pipeline) == set(deleted)
    restored = make_sandbox(conversations=200)  # same seed: the same 200, all listed again

    summary = run_load(pipeline, sandbox_source(restored, detect_deletes=True))

    assert _flagged(pipeline) == set()
    assert summary.deletions is not None and summary.deletions["marked"] == 0


def test_an_incremental_run_keeps_the_flags(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=200)
    pipeline = make_pipeline()
    deleted = _flag_oldest(sandbox, pipeline, 2)
    sandbox.store.bump(3)

    summary = run_load(pipeline, sandbox_source(sandbox))

    assert summary.deletions is None
    assert summary.updated == 3
    assert _flagged(pipeline) == set(deleted)


def test_a_near_empty_list_flags_nothing_and_says_why(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=200)
    pipeline = make_pipeline()
    run_load(pipeline, sandbox_source(sandbox))
    sandbox.store.delete(_oldest_ids(sandbox, 190))

    with pytest.raises(OctopushDeletionError) as refused:
        run_load(pipeline, sandbox_source(sandbox, detect_deletes=True))

    assert str(refused.value).startswith(
        "deletion detection refused: the list returned 10 conversations but conversations "
        "holds 200, under the safety share 0.5; nothing was marked"
    )
    assert _flagged(pipeline) == set()
    summary = run_load(
        pipeline, sandbox_source(sandbox, detect_deletes=True, deletes_min_share=0.05)
    )
    assert summary.deletions is not None and summary.deletions["marked"] == 190


def test_a_read_capped_by_max_pages_flags_nothing_and_says_why(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=200)
    pipeline = make_pipeline()
    run_load(pipeline, sandbox_source(sandbox))

    with pytest.raises(OctopushDeletionError, match="the read stopped at max_pages"):
        run_load(pipeline, sandbox_source(sandbox, detect_deletes=True, max_pages=1))

    assert _flagged(pipeline) == set()


def test_a_confirming_read_capped_by_max_pages_flags_nothing(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=200)
    pipeline = make_pipeline()
    run_load(pipeline, sandbox_source(sandbox))
    sandbox.store.delete(_oldest_ids(sandbox, 1))  # unseen: the list is read again to confirm
    sandbox.clear_requests()
    # The first read takes 10 pages of 20 and proves the end; then the list grows to 12 pages,
    # which the confirming read, capped at 11 like the first, cannot reach the end of.
    sandbox.before_request(13, lambda store: store.add_new(40))

    with pytest.raises(OctopushDeletionError, match="the read stopped at max_pages"):
        run_load(
            pipeline,
            sandbox_source(sandbox, detect_deletes=True, per_page=20, concurrency=1, max_pages=11),
        )

    assert _flagged(pipeline) == set()


@pytest.mark.parametrize("concurrency", [1, 8])
def test_conversations_moving_during_the_read_are_not_taken_for_deleted(
    make_sandbox, make_pipeline, concurrency
):
    sandbox = make_sandbox(conversations=200)
    pipeline = make_pipeline()
    run_load(pipeline, sandbox_source(sandbox))
    movers = _oldest_ids(sandbox, 6)
    sandbox.clear_requests()
    # Halfway through, the oldest conversations get a message and jump above the read position.
    sandbox.before_request(4, lambda store: store.bump_ids(movers))
    sandbox.before_request(6, lambda store: store.add_new(3))

    summary = run_load(
        pipeline,
        sandbox_source(sandbox, detect_deletes=True, per_page=20, concurrency=concurrency),
    )

    assert _flagged(pipeline) == set()
    assert summary.deletions is not None and summary.deletions["seen"] >= 203


def test_a_row_hidden_by_a_deletion_during_the_read_is_not_taken_for_deleted(
    make_sandbox, make_pipeline
):
    sandbox = make_sandbox(conversations=200)
    pipeline = make_pipeline()
    run_load(pipeline, sandbox_source(sandbox))
    (deleted,) = sandbox.store.delete(_oldest_ids(sandbox, 1))
    snapshot = sandbox.store.snapshot()
    read_then_deleted, hidden = snapshot[5]["conversation_id"], snapshot[40]["conversation_id"]
    sandbox.clear_requests()
    # Pages 1 and 2 are read; then a row of page 1 is deleted, and the first row of page 3
    # slides up onto page 2, which the read has passed.
    sandbox.before_request(3, lambda store: store.delete([read_then_deleted]))

    summary = run_load(
        pipeline, sandbox_source(sandbox, detect_deletes=True, per_page=20, concurrency=1)
    )

    # The row deleted after it was read is flagged by the next check, not this one.
    assert _flagged(pipeline) == {deleted}
    assert hidden in _flags(pipeline)
    assert summary.deletions is not None and summary.deletions["marked"] == 1


def test_hard_mode_removes_deleted_conversations(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=150)
    pipeline = make_pipeline()
    run_load(pipeline, sandbox_source(sandbox))
    deleted = sandbox.store.delete(_oldest_ids(sandbox, 4))

    summary = run_load(pipeline, sandbox_source(sandbox, detect_deletes=True, deletes_mode="hard"))

    remaining = set(_flags(pipeline))
    assert remaining == {row["conversation_id"] for row in sandbox.store.snapshot()}
    assert not remaining & set(deleted)
    with pipeline.sql_client() as client:
        parents = {row[0] for row in client.execute_sql("SELECT conversation_id FROM messages")}
    assert parents and not parents & set(deleted)
    assert summary.deletions is not None and summary.deletions["marked"] == 4


def test_postgres_flags_deleted_conversations(make_sandbox, make_pipeline, postgres_dataset):
    sandbox = make_sandbox(conversations=150)
    pipeline = make_pipeline(
        "octopush_pg_deletions",
        destination=dlt.destinations.postgres(POSTGRES_URL),
        dataset_name=postgres_dataset,
    )

    deleted = _flag_oldest(sandbox, pipeline, 3)

    assert _flagged(pipeline) == set(deleted)
    assert len(_flags(pipeline)) == 150


def test_bad_deletion_settings_are_refused_by_name(make_sandbox):
    sandbox = make_sandbox(conversations=1)

    with pytest.raises(OctopushConfigError, match="deletes_mode must be one of soft, hard"):
        sandbox_source(sandbox, detect_deletes=True, deletes_mode="purge")
    with pytest.raises(OctopushConfigError, match="deletes_min_share must be between 0 and 1"):
        sandbox_source(sandbox, detect_deletes=True, deletes_min_share=2)
