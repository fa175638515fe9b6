"""What keeps incremental loads exact on a bad day: late rows, equal timestamps, a server clock in
the future, ordering that fails, data moving during a read, and a cursor left by an earlier
version. Real pipelines into real DuckDB, reading the sandbox over HTTP."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import dlt
import pytest

from octopush_dlt.arrow import column_hints, to_table
from octopush_dlt.runner import run_load
from octopush_dlt.settings import CURSOR_COLUMN, PRIMARY_KEY, RESOURCE_NAME, SOURCE_NAME, TABLE_NAME
from octopush_dlt.tables import CONVERSATIONS
from octopush_provider.client import OctopushClient
from octopush_provider.sandbox import DEFAULT_API_KEY, DEFAULT_API_LOGIN
from tests.helpers import conversations_source, expected_table, loaded_table

FUTURE = datetime(2099, 1, 1, tzinfo=UTC)


def test_late_rows_inside_the_lag_window_are_loaded(make_sandbox, make_pipeline):
    # Messages stamped 1 to 150 s before the cursor that only became visible after the last run:
    # the default lag re-reads them, past the first page, and the early stop waits for them.
    sandbox = make_sandbox(conversations=1000)
    pipeline = make_pipeline()
    run_load(pipeline, conversations_source(sandbox))
    newest = sandbox.store.newest
    late = sandbox.store.add_at(newest - timedelta(seconds=s) for s in range(1, 151))

    summary = run_load(pipeline, conversations_source(sandbox))

    assert loaded_table(pipeline) == expected_table(sandbox.store)
    assert set(late) <= set(loaded_table(pipeline))
    assert summary.stop_reason == "caught_up"
    assert summary.pages == 3  # and the next page, proving the order across the stop


def test_equal_timestamps_are_not_taken_for_disorder(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=400)
    pipeline = make_pipeline()
    run_load(pipeline, conversations_source(sandbox))
    moment = sandbox.store.newest + timedelta(seconds=30)
    sandbox.store.add_at([moment] * 4)

    summary = run_load(pipeline, conversations_source(sandbox))
    sandbox.clear_requests()
    again = run_load(pipeline, conversations_source(sandbox))

    assert summary.new == 4
    assert not summary.ordering_unreliable
    assert summary.cursor == moment.isoformat()
    assert (again.stop_reason, len(sandbox.requests)) == (
        "caught_up",
        2,
    )  # and the next page, proving the order across the stop
    assert loaded_table(pipeline) == expected_table(sandbox.store)


def test_failed_ordering_is_remembered_in_later_runs(make_sandbox, make_pipeline):
    # With one row a page, no page can show disorder: only the flag left by the first run makes
    # the second read every page and find the new conversations, wherever they are served.
    sandbox = make_sandbox(conversations=60, shuffled=True)
    pipeline = make_pipeline()
    first = run_load(pipeline, conversations_source(sandbox, per_page=20))
    added = sandbox.store.add_new(3)

    summary = run_load(pipeline, conversations_source(sandbox, per_page=1))

    assert first.ordering_unreliable
    assert summary.ordering_unreliable
    assert summary.stop_reason == "empty_page"
    assert set(added) <= set(loaded_table(pipeline))
    assert loaded_table(pipeline) == expected_table(sandbox.store)


def test_a_future_timestamp_is_loaded_but_never_becomes_the_cursor(
    make_sandbox, make_pipeline, caplog
):
    sandbox = make_sandbox(conversations=500)
    future_id, *_ = sandbox.store.add_at(FUTURE - timedelta(hours=h) for h in range(12))
    pipeline = make_pipeline()

    with caplog.at_level(logging.WARNING):
        first = run_load(pipeline, conversations_source(sandbox))
    log = caplog.text
    added = sandbox.store.add_new(150)
    second = run_load(pipeline, conversations_source(sandbox))
    third = run_load(pipeline, conversations_source(sandbox))

    assert loaded_table(pipeline) == expected_table(sandbox.store)
    assert loaded_table(pipeline)[future_id][0] == FUTURE
    assert (first.future, first.new, first.conversations_loaded) == (12, 500, 512)
    assert first.cursor < FUTURE.isoformat()
    assert f"{future_id} has last_message_at 2099-01-01T00:00:00+00:00" in log
    assert "12 conversations had a last_message_at in the future" in log
    assert log.count("has last_message_at 209") == 10
    assert ", 12 future-dated (docs/summary.md#conversations)" in "\n".join(first.lines())
    assert (second.new, second.future, second.stop_reason) == (150, 12, "caught_up")
    assert set(added) <= set(loaded_table(pipeline))
    assert (third.new, third.updated, third.stop_reason) == (0, 0, "caught_up")


def test_a_cursor_left_in_the_future_by_an_earlier_version_is_recovered_from(
    make_sandbox, make_pipeline
):
    sandbox = make_sandbox(conversations=300)
    sandbox.store.add_at([FUTURE])
    pipeline = make_pipeline()
    _previous_version_load(pipeline, sandbox.base_url)
    added = sandbox.store.add_new(120)

    summary = run_load(pipeline, conversations_source(sandbox))

    assert set(added) <= set(loaded_table(pipeline))
    assert loaded_table(pipeline) == expected_table(sandbox.store)
    assert summary.cursor < FUTURE.isoformat()


def test_a_table_loaded_by_the_previous_version_carries_on_incrementally(
    make_sandbox, make_pipeline
):
    sandbox = make_sandbox(conversations=1500)
    pipeline = make_pipeline()
    _previous_version_load(pipeline, sandbox.base_url)
    added = sandbox.store.add_new(7)
    bumped = sandbox.store.bump(5)
    sandbox.clear_requests()

    summary = run_load(pipeline, conversations_source(sandbox))

    assert (summary.new, summary.updated) == (len(added), len(bumped))
    assert len(sandbox.requests) == 2  # and the next page, proving the order across the stop
    assert loaded_table(pipeline) == expected_table(sandbox.store)


@pytest.mark.parametrize("concurrency", [1, 8])
def test_counts_are_of_distinct_conversations_when_data_moves(
    make_sandbox, make_pipeline, concurrency
):
    # New conversations arriving during the read push rows onto the next page (read twice), and
    # make a concurrent read read everything again in order.
    sandbox = make_sandbox(conversations=1200, latency=0.002)
    for n in range(2, 20, 2):
        sandbox.before_request(n, lambda store: store.add_new(3))
    pipeline = make_pipeline()

    summary = run_load(
        pipeline, conversations_source(sandbox, per_page=50, concurrency=concurrency)
    )

    assert summary.reread == (concurrency > 1)
    assert summary.conversations_loaded == summary.new == len(loaded_table(pipeline))


def _previous_version_load(pipeline: dlt.Pipeline, base_url: str) -> None:
    """A full load as the version before this one made it: the cursor kept by dlt's incremental."""

    @dlt.source(name=SOURCE_NAME, max_table_nesting=0)
    def octopush() -> object:
        @dlt.resource(
            name=RESOURCE_NAME,
            table_name=TABLE_NAME,
            primary_key=PRIMARY_KEY,
            write_disposition="merge",
            columns=column_hints(CONVERSATIONS),
        )
        def conversations(
            last_message_at: dlt.sources.incremental[datetime] = dlt.sources.incremental(
                CURSOR_COLUMN, lag=300
            ),
        ) -> object:
            with OctopushClient(
                api_login=DEFAULT_API_LOGIN, api_key=DEFAULT_API_KEY, base_url=base_url
            ) as client:
                for page in client.iter_pages():
                    yield to_table(page, CONVERSATIONS)

        return conversations

    pipeline.run(octopush())
