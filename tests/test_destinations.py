"""Destinations other than DuckDB: the real Postgres of this machine, and BigQuery's hints.

BigQuery cannot be reached from here, so its test stops before the load: it checks that the
pipeline extracts and normalises with the partition and cluster hints BigQuery will apply.
"""

from __future__ import annotations

import re

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


def test_bigquery_pipeline_normalises_and_creates_a_partitioned_clustered_table(
    make_sandbox, make_pipeline, monkeypatch
):
    # Placeholder credentials: nothing here connects to Google, the load step is never run.
    monkeypatch.setenv("DESTINATION__BIGQUERY__CREDENTIALS__PROJECT_ID", "octopush-test")
    monkeypatch.setenv("DESTINATION__BIGQUERY__CREDENTIALS__CLIENT_EMAIL", "ci@octopush-test.iam")
    monkeypatch.setenv("DESTINATION__BIGQUERY__CREDENTIALS__PRIVATE_KEY", "not-a-real-key")
    sandbox = make_sandbox(conversations=300)
    pipeline = make_pipeline("octopush_bq", destination="bigquery")

    pipeline.extract(sandbox_source(sandbox), loader_file_format="parquet")
    pipeline.normalize()

    package = pipeline.get_load_package_info(pipeline.list_normalized_load_packages()[0])
    files = [job.file_path for jobs in package.jobs.values() for job in jobs]
    assert any("conversations" in path and path.endswith(".parquet") for path in files)
    client = pipeline.destination_client()  # not opened: no connection is attempted
    create = client._get_table_update_sql(
        "conversations",
        list(pipeline.default_schema.get_table_columns("conversations").values()),
        generate_alter=False,
    )[0]
    assert "PARTITION BY DATE(`last_message_at`)" in create
    assert "CLUSTER BY `conversation_id`" in create
    assert re.search(r"`last_message_at` TIMESTAMP\s+NOT NULL", create)
