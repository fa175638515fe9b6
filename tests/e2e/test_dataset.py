"""Reading a load back the way dlt documents it: ``pipeline.dataset()``."""

from __future__ import annotations

from tests.helpers import expected_messages, expected_table, sandbox_source


def test_loaded_rows_read_back_through_pipeline_dataset(sandbox, make_pipeline):
    pipeline = make_pipeline()
    pipeline.run(sandbox_source(sandbox))
    messages = expected_messages(sandbox.store)

    dataset = pipeline.dataset()

    counts = dict(dataset.row_counts().fetchall())
    assert (counts["conversations"], counts["messages"]) == (250, len(messages))
    conversations = dataset.conversations.select("conversation_id", "number_of_messages")
    assert dict(conversations.fetchall()) == {
        cid: count for cid, (_, count) in expected_table(sandbox.store).items()
    }
    # In chunks: dlt 1.31's .arrow() of a whole DuckDB result calls fetch_arrow_table(), which
    # duckdb 2.0 removed; its chunked read uses the reader duckdb 1.5+ offers.
    arrow_ids = [
        message_id
        for table in dataset.messages.iter_arrow(chunk_size=1000)
        for message_id in table.column("message_id").to_pylist()
    ]
    assert sorted(arrow_ids) == sorted(messages)
    assert set(dataset.messages.df()["message_id"]) == set(messages)
