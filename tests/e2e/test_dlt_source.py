"""The dlt source through real pipelines into real DuckDB, reading the sandbox over HTTP."""

from __future__ import annotations

import gc
import logging

import dlt
import pyarrow as pa
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from octopush_dlt import octopush_source
from octopush_dlt.arrow import fast_table
from octopush_dlt.runner import run_load
from octopush_provider.exceptions import OctopushAuthError, OctopushServerError
from octopush_provider.retry import RetryPolicy
from tests.helpers import (
    conversations_source,
    expected_table,
    loaded_table,
    read_report,
    root_cause,
)

# These tests pin the conversations table; tests/e2e/test_messages.py loads both.
CONVERSATIONS_ONLY = ["conversations"]


def test_a_full_load_equals_the_sandbox(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=1234)
    pipeline = make_pipeline()

    summary = run_load(pipeline, conversations_source(sandbox))

    assert loaded_table(pipeline) == expected_table(sandbox.store)
    assert summary.conversations_loaded == summary.new == 1234
    assert summary.pages == 13
    assert summary.stop_reason == "empty_page"
    assert summary.cursor == max(expected_table(sandbox.store).values())[0].isoformat()


def test_columns_land_typed_and_flattened(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=50)
    pipeline = make_pipeline()

    run_load(pipeline, conversations_source(sandbox))

    with pipeline.sql_client() as client:
        types = dict(
            (name, kind) for name, kind, *_ in client.execute_sql("DESCRIBE octopush.conversations")
        )
        nulls = client.execute_sql(
            "SELECT count(*) FROM conversations WHERE agent_assigned_to IS NULL"
        )[0][0]
        first = sandbox.store.snapshot()[0]
        phone, name = client.execute_sql(
            "SELECT recipient_details__phone_number, recipient_details__name FROM conversations "
            "WHERE conversation_id = ?",
            first["conversation_id"],
        )[0]
    assert types["last_message_at"] == types["first_message_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["color"] == types["number_of_messages"] == "BIGINT"
    assert (phone, name) == tuple(first["recipient_details"].values())
    assert 0 < nulls < 50


def test_the_second_run_reads_only_new_pages_and_merges_updates(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=2000)
    pipeline = make_pipeline()
    run_load(pipeline, conversations_source(sandbox))
    added = sandbox.store.add_new(7)
    bumped = sandbox.store.bump(5)
    sandbox.clear_requests()

    summary = run_load(pipeline, conversations_source(sandbox))

    assert loaded_table(pipeline) == expected_table(sandbox.store)
    assert (summary.new, summary.updated) == (len(added), len(bumped))
    assert summary.stop_reason == "caught_up"
    assert len(sandbox.requests) == 2  # and the next page, proving the order across the stop


def test_a_run_with_nothing_new_reads_one_page_and_the_one_that_proves_the_order(
    make_sandbox, make_pipeline
):
    sandbox = make_sandbox(conversations=2000)
    pipeline = make_pipeline()
    run_load(pipeline, conversations_source(sandbox))
    sandbox.clear_requests()

    summary = run_load(pipeline, conversations_source(sandbox))

    assert [r.page for r in sandbox.requests] == [1, 2]
    assert summary.new == summary.updated == 0
    assert loaded_table(pipeline) == expected_table(sandbox.store)


def test_conversations_moving_during_runs_are_never_lost_or_doubled(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=3000, latency=0.002)
    for n in range(2, 40, 3):
        sandbox.before_request(n, lambda store: (store.add_new(4), store.bump(3)))
    pipeline = make_pipeline()
    options = {"per_page": 50, "lag_seconds": 0}

    first = run_load(pipeline, conversations_source(sandbox, **options))
    sandbox.clear_requests()
    for n in range(1, 4):
        sandbox.before_request(n, lambda store: (store.add_new(2), store.bump(2)))
    run_load(pipeline, conversations_source(sandbox, **options))
    # What moved after the second run read past it is newer than its cursor: the third run
    # picks it up, and from then on the table is exact.
    run_load(pipeline, conversations_source(sandbox, **options))
    sandbox.clear_requests()
    last = run_load(pipeline, conversations_source(sandbox, **options))

    assert first.reread
    assert not last.ordering_unreliable
    assert loaded_table(pipeline) == expected_table(sandbox.store)
    assert last.new == last.updated == 0
    assert len(sandbox.requests) == 2  # and the next page, proving the order across the stop


def test_unordered_data_is_read_in_full_and_filtered_here(make_sandbox, make_pipeline, caplog):
    sandbox = make_sandbox(conversations=800, shuffled=True)
    pipeline = make_pipeline()
    run_load(pipeline, conversations_source(sandbox))
    sandbox.store.add_new(3)
    sandbox.store.bump(4)
    sandbox.clear_requests()

    with caplog.at_level(logging.WARNING):
        summary = run_load(pipeline, conversations_source(sandbox))

    assert loaded_table(pipeline) == expected_table(sandbox.store)
    assert summary.stop_reason == "empty_page"
    assert summary.ordering_unreliable
    assert (summary.new, summary.updated) == (3, 4)
    assert summary.conversations_loaded < 20
    assert "not ordered newest-first" in caplog.text or "ordering failed" in caplog.text


def test_ordering_that_breaks_deep_down_stops_the_early_stop(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=900)
    pipeline = make_pipeline()
    run_load(pipeline, conversations_source(sandbox, lag_seconds=0))
    sandbox.store.shuffled = True
    sandbox.store.add_new(2)

    summary = run_load(pipeline, conversations_source(sandbox, lag_seconds=0))

    assert summary.ordering_unreliable
    assert summary.stop_reason == "empty_page"
    assert loaded_table(pipeline) == expected_table(sandbox.store)


@pytest.mark.parametrize("offsets", ["paris", "mixed"])
def test_offsets_across_dst_land_as_the_same_utc_instants(make_sandbox, make_pipeline, offsets):
    sandbox = make_sandbox(conversations=600, offsets=offsets)
    pipeline = make_pipeline()

    run_load(pipeline, conversations_source(sandbox))

    assert loaded_table(pipeline) == expected_table(sandbox.store)


def test_a_run_that_fails_midway_loads_nothing_and_the_rerun_is_exact(
    make_sandbox, make_client, make_pipeline
):
    sandbox = make_sandbox(conversations=1500)
    sandbox.add_fault("503", page=9, times=50)
    client = make_client(sandbox)
    pipeline = make_pipeline()

    with pytest.raises(PipelineStepFailed) as raised:
        run_load(pipeline, octopush_source(client=client, resources=CONVERSATIONS_ONLY))

    assert isinstance(root_cause(raised.value), OctopushServerError)
    assert "octopush" not in pipeline.state.get("sources", {})
    sandbox.clear_faults()
    sandbox.store.add_new(2)
    summary = run_load(pipeline, octopush_source(client=client, resources=CONVERSATIONS_ONLY))
    assert summary.new == 1502
    assert loaded_table(pipeline) == expected_table(sandbox.store)


def test_a_deleted_warehouse_is_loaded_in_full_not_from_a_stale_cursor(
    make_sandbox, make_pipeline, tmp_path
):
    sandbox = make_sandbox(conversations=640)
    warehouse = tmp_path / "warehouse.duckdb"
    run_load(
        make_pipeline(destination=dlt.destinations.duckdb(str(warehouse))),
        conversations_source(sandbox),
    )
    warehouse.unlink()
    again = make_pipeline(destination=dlt.destinations.duckdb(str(warehouse)))

    summary = run_load(again, conversations_source(sandbox))

    assert summary.new == 640
    assert loaded_table(again) == expected_table(sandbox.store)


def test_full_refresh_starts_over(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=700)
    pipeline = make_pipeline()
    run_load(pipeline, conversations_source(sandbox))

    summary = run_load(pipeline, conversations_source(sandbox), full_refresh=True)

    assert summary.new == summary.conversations_loaded == 700
    assert summary.stop_reason == "empty_page"
    assert loaded_table(pipeline) == expected_table(sandbox.store)


def test_a_load_leaves_the_garbage_collector_as_it_found_it(make_sandbox, make_pipeline):
    """A load collects rarely and freezes older objects; an Airflow worker lives on after it."""
    sandbox = make_sandbox(conversations=300)
    before = gc.get_threshold()

    run_load(make_pipeline(), conversations_source(sandbox))
    after_success = (gc.get_threshold(), gc.get_freeze_count())
    with pytest.raises(PipelineStepFailed):
        run_load(make_pipeline("failing"), conversations_source(sandbox, api_key="wrong"))

    assert after_success == (before, 0)
    assert (gc.get_threshold(), gc.get_freeze_count()) == (before, 0)


def test_a_load_leaves_arrows_memory_pool_as_it_found_it(make_sandbox, make_pipeline, monkeypatch):
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    sandbox = make_sandbox(conversations=300)
    before = pa.default_memory_pool().backend_name
    with pytest.raises(PipelineStepFailed):
        run_load(make_pipeline("failing"), conversations_source(sandbox, api_key="wrong"))
    seen: list[str] = []
    monkeypatch.setattr(
        "octopush_dlt.conversations.fast_table",
        lambda items, table=fast_table: (
            seen.append(pa.default_memory_pool().backend_name) or table(items)
        ),
    )

    run_load(make_pipeline(), conversations_source(sandbox))

    assert set(seen) == {"system"}
    assert pa.default_memory_pool().backend_name == before


def test_wrong_credentials_fail_fast_without_echoing_the_key(make_sandbox, make_pipeline, caplog):
    sandbox = make_sandbox()
    pipeline = make_pipeline()
    source = conversations_source(sandbox, api_key="not-the-key-8c1d")

    with caplog.at_level(logging.DEBUG), pytest.raises(PipelineStepFailed) as raised:
        run_load(pipeline, source)

    error = root_cause(raised.value)
    assert isinstance(error, OctopushAuthError)
    assert "check the API login and API key" in str(error)
    assert len(sandbox.requests) == 1
    assert "not-the-key-8c1d" not in str(raised.value) + caplog.text


def test_a_start_date_limits_the_first_load(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=1000)
    expected = expected_table(sandbox.store)
    cutoff = sorted(moment for moment, _ in expected.values())[-290]
    pipeline = make_pipeline()

    summary = run_load(pipeline, conversations_source(sandbox, start_date=cutoff.isoformat()))

    assert loaded_table(pipeline) == {k: v for k, v in expected.items() if v[0] >= cutoff}
    assert summary.pages == 4  # and the next page, proving the order across the stop
    assert read_report(pipeline)["stop_reason"] == "caught_up"


def test_random_faults_and_moving_data_across_runs_still_end_exact(
    make_sandbox, make_client, make_pipeline
):
    sandbox = make_sandbox(
        conversations=2500,
        fault_rate=0.15,
        fault_kinds=("500", "503", "html-502", "truncated", "reset"),
        churn_new=1,
        churn_bump=1,
    )
    retry = RetryPolicy(max_attempts=10, backoff_base=0.005, backoff_max=0.02, budget=10.0)
    client = make_client(sandbox, concurrency=8, per_page=50, retry=retry)
    pipeline = make_pipeline()

    summaries = [
        run_load(
            pipeline, octopush_source(client=client, resources=CONVERSATIONS_ONLY, lag_seconds=0)
        )
        for _ in "abc"
    ]
    sandbox.fault_rate, sandbox.churn_new, sandbox.churn_bump = 0.0, 0, 0
    last = run_load(
        pipeline, octopush_source(client=client, resources=CONVERSATIONS_ONLY, lag_seconds=0)
    )

    assert sum(summary.retries for summary in summaries) > 0
    assert loaded_table(pipeline) == expected_table(sandbox.store)
    assert not last.ordering_unreliable


def test_a_run_capped_by_max_pages_keeps_the_cursor_so_the_next_run_loses_nothing(
    make_sandbox, make_pipeline, caplog
):
    sandbox = make_sandbox(conversations=1000)
    pipeline = make_pipeline()
    first = run_load(pipeline, conversations_source(sandbox))
    sandbox.store.add_new(450)  # more than the cap lets a run read

    with caplog.at_level(logging.WARNING):
        capped = run_load(pipeline, conversations_source(sandbox, max_pages=2))

    assert (capped.stop_reason, capped.pages) == ("max_pages", 2)
    assert "stopped at max_pages=2" in caplog.text
    assert "the cursor stays at" in caplog.text
    assert len(loaded_table(pipeline)) == 1200
    assert capped.cursor == first.cursor
    summary = run_load(pipeline, conversations_source(sandbox))
    assert loaded_table(pipeline) == expected_table(sandbox.store)
    assert summary.stop_reason == "caught_up"


def test_max_pages_comes_from_dlt_config(make_sandbox, make_pipeline, monkeypatch):
    sandbox = make_sandbox(conversations=1000)
    monkeypatch.setenv("SOURCES__OCTOPUSH__MAX_PAGES", "3")

    summary = run_load(make_pipeline(), conversations_source(sandbox))

    assert (summary.stop_reason, summary.pages, summary.new) == ("max_pages", 3, 300)
