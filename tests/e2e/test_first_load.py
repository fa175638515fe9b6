"""A load into a table that is absent appends; anything else, or a read that repeated, merges."""

from __future__ import annotations

import dlt

from octopush_dlt.runner import run_load
from tests.helpers import conversations_source, expected_table, loaded_table, sandbox_source


def _disposition(pipeline: dlt.Pipeline) -> str:
    return str(pipeline.default_schema.tables["conversations"]["write_disposition"])


def test_a_first_load_appends(make_sandbox, make_pipeline, capfd):
    sandbox = make_sandbox(conversations=600)
    pipeline = make_pipeline()

    run_load(pipeline, conversations_source(sandbox, per_page=100))

    assert "dedup_sort" not in capfd.readouterr().err  # dlt's warning of a hint it ignores

    assert _disposition(pipeline) == "append"
    assert loaded_table(pipeline) == expected_table(sandbox.store)


def test_a_first_load_read_in_many_batches_appends(make_sandbox, make_pipeline, monkeypatch):
    # Whether the table is absent is asked before dlt sees the first batch: once it has, dlt's
    # schema holds the table, and the load would merge.
    monkeypatch.setattr("octopush_dlt.batches.BATCH_ROWS", 100)
    sandbox = make_sandbox(conversations=600)
    pipeline = make_pipeline()

    run_load(pipeline, conversations_source(sandbox, per_page=100))

    assert _disposition(pipeline) == "append"
    assert loaded_table(pipeline) == expected_table(sandbox.store)


def test_a_first_load_under_churn_lands_each_conversation_once(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=1500, latency=0.002)
    for n in range(2, 30, 3):
        sandbox.before_request(n, lambda store: (store.add_new(4), store.bump(3)))
    pipeline = make_pipeline()

    summary = run_load(pipeline, conversations_source(sandbox, per_page=50, lag_seconds=0))

    assert summary.reread
    loaded = loaded_table(pipeline)  # refuses a conversation loaded twice
    assert loaded.keys() == expected_table(sandbox.store).keys()
    assert _disposition(pipeline) == "merge"


def test_later_runs_merge_updates(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=600)
    pipeline = make_pipeline()
    run_load(pipeline, conversations_source(sandbox))
    sandbox.store.bump(5)
    sandbox.store.add_new(3)

    run_load(pipeline, conversations_source(sandbox))

    assert loaded_table(pipeline) == expected_table(sandbox.store)
    assert _disposition(pipeline) == "merge"
    cursor = pipeline.default_schema.tables["conversations"]["columns"]["last_message_at"]
    assert cursor.get("dedup_sort") == "desc"


def test_a_full_refresh_appends_into_the_dropped_table(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=600)
    pipeline = make_pipeline()
    run_load(pipeline, conversations_source(sandbox))
    sandbox.store.bump(5)

    run_load(pipeline, conversations_source(sandbox), full_refresh=True)

    assert _disposition(pipeline) == "append"
    assert loaded_table(pipeline) == expected_table(sandbox.store)


def test_a_new_pipeline_into_a_filled_table_merges(make_sandbox, make_pipeline, tmp_path):
    sandbox = make_sandbox(conversations=600)
    warehouse = str(tmp_path / "shared.duckdb")
    run_load(
        make_pipeline("first", destination=dlt.destinations.duckdb(warehouse)),
        conversations_source(sandbox),
    )
    sandbox.store.bump(5)
    other = make_pipeline("second", destination=dlt.destinations.duckdb(warehouse))

    run_load(other, conversations_source(sandbox))

    assert loaded_table(other) == expected_table(sandbox.store)
    assert _disposition(other) == "merge"


def test_batches_built_column_wise_and_row_wise_load_alike(make_sandbox, make_pipeline):
    # 12,000 rows in batches of 5 pages of 1,000: a string count on page 8 sends the second
    # batch the row-wise way, the first and third go column-wise.
    sandbox = make_sandbox(conversations=12_000)
    odd = sandbox.store.snapshot()[7_500]["conversation_id"]
    sandbox.store.rewrite(odd, {"number_of_messages": "7", "color": 2.0})
    pipeline = make_pipeline()

    run_load(pipeline, conversations_source(sandbox, per_page=1000))

    expected = expected_table(sandbox.store)
    assert loaded_table(pipeline) == expected | {odd: (expected[odd][0], 7)}
    with pipeline.sql_client() as client:
        assert client.execute_sql(
            "SELECT color FROM conversations WHERE conversation_id = ?", odd
        ) == [(2,)]


def test_a_first_load_with_messages_merges(make_sandbox, make_pipeline):
    # dlt hands the hints that come with a table on to the messages transformer reading it.
    sandbox = make_sandbox(conversations=300)
    pipeline = make_pipeline()

    run_load(pipeline, sandbox_source(sandbox))

    assert loaded_table(pipeline) == expected_table(sandbox.store)
    assert _disposition(pipeline) == "merge"
