"""Destinations other than DuckDB: the real Postgres here; BigQuery in test_bigquery.py."""

from __future__ import annotations

import dlt

from octopush_dlt.runner import run_load
from tests.helpers import (
    POSTGRES_URL,
    expected_messages,
    expected_table,
    list_requests,
    loaded_messages,
    loaded_table,
    message_requests,
    sandbox_source,
)


def test_postgres_full_then_incremental_load_of_both_tables_equals_the_sandbox(
    make_sandbox, make_pipeline, postgres_dataset
):
    sandbox = make_sandbox(conversations=1500, offsets="mixed")
    pipeline = make_pipeline(
        "octopush_pg",
        destination=dlt.destinations.postgres(POSTGRES_URL),
        dataset_name=postgres_dataset,
    )

    first = run_load(pipeline, sandbox_source(sandbox))
    assert loaded_table(pipeline) == expected_table(sandbox.store)
    sandbox.store.add_new(4)
    sandbox.store.bump(6)
    sandbox.clear_requests()
    second = run_load(pipeline, sandbox_source(sandbox))

    assert first.new == 1500
    assert (second.new, second.updated) == (4, 6)
    assert len(list_requests(sandbox)) == 2  # and the next page, proving the order across the stop
    assert second.messages is not None
    # One request a conversation read, and one a conversation waiting for delivery receipts.
    assert len(message_requests(sandbox)) == (
        second.conversations_loaded + second.messages.receipts.requests
    )
    assert loaded_table(pipeline) == expected_table(sandbox.store)
    assert loaded_messages(pipeline) == expected_messages(sandbox.store)
    assert second.messages is not None and second.messages.disagreeing == 0
    with pipeline.sql_client() as client:
        kinds = dict(
            client.execute_sql(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = 'conversations'",
                postgres_dataset,
            )
        )
    assert kinds["last_message_at"] == "timestamp with time zone"
    assert kinds["number_of_messages"] == "bigint"


def test_a_postgres_load_asks_for_no_file_format_its_driver_cannot_take(
    sandbox, make_pipeline, postgres_dataset, capfd
):
    # Postgres lists parquet, but takes it only through the optional ADBC driver: a load asking
    # for it without the driver had dlt warn (on stderr, its own handler) for each table of each
    # run, then insert rows anyway.
    destination = dlt.destinations.postgres(POSTGRES_URL)
    pipeline = make_pipeline("octopush_pg", destination=destination, dataset_name=postgres_dataset)

    run_load(pipeline, sandbox_source(sandbox))

    _, stderr = capfd.readouterr()
    assert "file format" not in stderr, stderr[-2000:]
    assert loaded_table(pipeline) == expected_table(sandbox.store)
