"""Memory bounded in bytes: batches of huge rows close early, dlt's writer holds one batch."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest
import requests
from dlt.common.configuration.resolve import inject_section, resolve_configuration
from dlt.common.configuration.specs import ConfigSectionContext, known_sections
from dlt.common.data_writers.buffered import BufferedDataWriter

from octopush_dlt import octopush_source
from octopush_dlt.batches import batches
from octopush_dlt.settings import BATCH_BYTES
from octopush_provider.page import StopReason
from octopush_provider.prefetch import Prefetcher
from octopush_provider.transport import read_body

MiB = 1024 * 1024


def test_a_batch_of_huge_rows_closes_at_its_bytes_before_its_rows():
    # Pages of 100 rows of 600 KB each (~60 MB): far fewer rows than a batch, far more bytes.
    pages = [f"page {n}" for n in range(1, 7)]

    joined = list(batches(pages, rows=lambda page: 100, size=lambda page: 60_000_000))

    # Each page alone passes BATCH_BYTES: each is a batch of its own, none waits for the next.
    assert BATCH_BYTES < 60_000_000
    assert joined == [[page] for page in pages]


def test_small_pages_are_joined_until_their_bytes_reach_the_bound():
    pages = list(range(10))

    joined = list(batches(pages, rows=lambda page: 10, size=lambda page: 10 * MiB))

    assert [len(batch) for batch in joined] == [4, 4, 2]  # 40 MiB >= 32 MiB closes a batch


def _row_groups_extracted(pipeline) -> list[int]:
    """Row groups of each conversations file dlt's extract step wrote (one per write)."""
    files = sorted(Path(pipeline.working_dir).rglob("conversations.*.parquet"))
    assert files, "no conversations file was extracted"
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


def test_pages_read_ahead_never_hold_more_bytes_than_the_budget():
    # 40 pages of 1 MiB read by 8 workers up to 16 pages ahead, with a budget of 4 MiB and a
    # reader slower than them. Bodies are read through read_body, which counts them as they come.
    lock = threading.Lock()
    read: dict[int, int] = {}  # bodies read in full and not yet taken, by page
    peaks: list[int] = []

    def fetch(number: int) -> SimpleNamespace:
        response = requests.Response()
        response.status_code, response.raw = 200, io.BytesIO(b"x" * MiB)
        body = read_body(response, limit=2 * MiB)
        with lock:
            read[number] = len(body)
            peaks.append(sum(size for page, size in read.items() if page > taken[0] + 1))
        return SimpleNamespace(end=StopReason.EMPTY_PAGE if number == 40 else None)

    taken = [0]
    prefetcher = Prefetcher(
        fetch, start=1, workers=8, max_ahead=16, wait_limit=30, max_bytes=4 * MiB
    )
    try:
        for number in range(1, 41):
            prefetcher.take(number)
            with lock:
                taken[0] = number
                read.pop(number, None)
            time.sleep(0.01)
    finally:
        prefetcher.close()

    # Ahead of the page the reader waits for (never held back): the budget's bytes, and one
    # page more while the reader's count lags its take. Bounded in pages alone: up to 16 MiB.
    assert max(peaks) <= 5 * MiB, max(peaks) / MiB
