"""Memory bounded in bytes: a first load's slices and the messages batches hold a bounded number
of bytes; dlt's writers hold one batch of ours, unless the user set theirs."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dlt.common.configuration.resolve import inject_section, resolve_configuration
from dlt.common.configuration.specs import ConfigSectionContext, known_sections
from dlt.common.data_writers.buffered import BufferedDataWriter

from octopush_dlt import octopush_source
from octopush_dlt.backfill import json_bytes
from octopush_dlt.runner import run_load
from octopush_provider.conversations import parse_page
from tests.helpers import (
    expected_messages,
    expected_table,
    loaded_messages,
    loaded_table,
    sandbox_source,
)


def _row_groups_extracted(pipeline, table: str = "conversations") -> list[int]:
    """Row groups of each ``table`` file dlt's extract step wrote (one per write)."""
    files = sorted(Path(pipeline.working_dir).rglob(f"{table}.*.parquet"))
    assert files, f"no {table} file was extracted"
    return [pq.ParquetFile(file).metadata.num_row_groups for file in files]


def test_dlt_writes_each_batch_as_it_comes_under_a_plain_extract(
    sandbox, make_client, make_pipeline, monkeypatch
):
    # 250 conversations in batches of 100: dlt's default buffer (5,000 rows) would hold all
    # three and write them as one row group; told to hold one batch, it writes each at once.
    monkeypatch.setattr("octopush_dlt.batches.BATCH_ROWS", 100)
    pipeline = make_pipeline()
    source = octopush_source(client=make_client(sandbox), resources=["conversations"])

    pipeline.extract(source, loader_file_format="parquet")

    assert _row_groups_extracted(pipeline) == [3]


@pytest.mark.parametrize(
    "variable",
    [
        "SOURCES__OCTOPUSH__DATA_WRITER__BUFFER_MAX_ITEMS",
        "SOURCES__DATA_WRITER__BUFFER_MAX_ITEMS",
        "DATA_WRITER__BUFFER_MAX_ITEMS",
    ],
)
def test_a_writer_buffer_the_user_set_wins_over_the_source_default(
    sandbox, make_client, make_pipeline, monkeypatch, variable
):
    monkeypatch.setattr("octopush_dlt.batches.BATCH_ROWS", 100)
    monkeypatch.setenv(variable, "5000")
    pipeline = make_pipeline()
    source = octopush_source(client=make_client(sandbox), resources=["conversations"])

    pipeline.extract(source, loader_file_format="parquet")

    assert _row_groups_extracted(pipeline) == [1]  # the user's 5,000 rows held all three


def _normalize_writer_buffer(pipeline_name: str) -> int:
    """The buffer dlt's normalize step of ``pipeline_name`` resolves for its writers."""
    section = ConfigSectionContext(
        pipeline_name=pipeline_name, sections=(known_sections.NORMALIZE,)
    )
    with inject_section(section):
        return resolve_configuration(
            BufferedDataWriter.BufferedDataWriterConfiguration()
        ).buffer_max_items


def test_the_pipeline_that_extracts_the_source_normalizes_one_batch_at_a_time(
    sandbox, make_client, make_pipeline
):
    pipeline = make_pipeline("octopush_bounded")
    pipeline.extract(octopush_source(client=make_client(sandbox), resources=["conversations"]))

    assert _normalize_writer_buffer("octopush_bounded") == 1
    assert _normalize_writer_buffer("some_other_pipeline") == 5000  # dlt's default, untouched


@pytest.mark.parametrize(
    "variable",
    [
        "NORMALIZE__DATA_WRITER__BUFFER_MAX_ITEMS",
        "DATA_WRITER__BUFFER_MAX_ITEMS",
        "OCTOPUSH_USER_SET__NORMALIZE__DATA_WRITER__BUFFER_MAX_ITEMS",
        "OCTOPUSH_USER_SET__DATA_WRITER__BUFFER_MAX_ITEMS",
    ],
)
def test_a_normalize_buffer_the_user_set_wins_over_the_source_default(
    sandbox, make_client, make_pipeline, monkeypatch, variable
):
    monkeypatch.setenv(variable, "2000")
    pipeline = make_pipeline("octopush_user_set")
    pipeline.extract(octopush_source(client=make_client(sandbox), resources=["conversations"]))

    assert _normalize_writer_buffer("octopush_user_set") == 2000


def test_a_first_load_of_heavy_conversations_goes_in_slices_bounded_by_their_bytes(
    make_sandbox, make_pipeline, monkeypatch
):
    # 300 conversations, far fewer than the default 5,000 a slice: only their bytes cut slices.
    sandbox = make_sandbox(conversations=300)
    heaviest = max(map(json_bytes, parse_page(sandbox.store.snapshot(), page=1)))
    monkeypatch.setattr("octopush_dlt.backfill.SLICE_BYTES", 100 * heaviest)
    pipeline = make_pipeline()

    summary = run_load(pipeline, sandbox_source(sandbox))

    assert summary.slices >= 3  # at least 100 conversations a slice, at most ~100 x heaviest
    assert loaded_messages(pipeline) == expected_messages(sandbox.store)
    assert loaded_table(pipeline) == expected_table(sandbox.store)


def test_messages_batches_close_at_their_bytes_before_their_rows(
    make_sandbox, make_client, make_pipeline, monkeypatch
):
    # 40 conversations' messages, far fewer than a batch's 10,000 rows: only bytes cut batches.
    monkeypatch.setattr("octopush_dlt.batches.BATCH_BYTES", 1)
    sandbox = make_sandbox(conversations=40)
    pipeline = make_pipeline()
    source = octopush_source(client=make_client(sandbox))

    pipeline.extract(source, loader_file_format="parquet")

    with_messages = sum(1 for row in sandbox.store.snapshot() if row["number_of_messages"])
    # Each conversation's pages pass the bound: its messages are a batch, written at once.
    assert sum(_row_groups_extracted(pipeline, "messages")) == with_messages


def test_a_deletion_checks_batches_close_at_their_bytes_before_their_rows(
    make_sandbox, make_pipeline, monkeypatch
):
    sandbox = make_sandbox(conversations=50)
    pipeline = make_pipeline()
    run_load(pipeline, sandbox_source(sandbox, detect_deletes=True, per_page=10))
    before = sum(_row_groups_extracted(pipeline))
    monkeypatch.setattr("octopush_dlt.batches.BATCH_BYTES", 1)

    run_load(pipeline, sandbox_source(sandbox, detect_deletes=True, per_page=10))

    # Five pages of 10, far fewer than a batch's 10,000 rows: only bytes cut them apart.
    assert sum(_row_groups_extracted(pipeline)) - before >= 5
    assert loaded_table(pipeline) == expected_table(sandbox.store)
