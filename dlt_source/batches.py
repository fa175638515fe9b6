"""Pages joined into batches for dlt, and the write disposition a batch carries.

dlt's per-item work (~4 ms of the GIL an item, while pages download) is paid once per batch of
about ``BATCH_ROWS`` rows rather than once per page. The last batch of a read carries the write
disposition: a first load into an absent table appends instead of merging.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import dlt
import pyarrow as pa
from dlt.extract.hints import TResourceHints
from dlt.extract.items import DataItemWithMeta

from octopush_dlt.cursor import ReadTally
from octopush_dlt.settings import BATCH_BYTES, BATCH_ROWS

__all__ = ["batches", "counted"]

_Part = TypeVar("_Part")


def batches(
    parts: Iterable[_Part],
    *,
    rows: Callable[[_Part], int],
    size: Callable[[_Part], int],
) -> Iterator[list[_Part]]:
    """Pages (or lists of rows) joined into batches of about ``BATCH_ROWS`` rows, or fewer
    whose ``size`` (bytes as sent) reaches ``BATCH_BYTES``."""
    batch: list[_Part] = []
    count = weight = 0
    for part in parts:
        batch.append(part)
        count += rows(part)
        weight += size(part)
        if count >= BATCH_ROWS or weight >= BATCH_BYTES:
            yield batch
            batch, count, weight = [], 0, 0
    if batch:
        yield batch


def counted(
    tables: Iterable[pa.Table | None],
    *,
    tally: ReadTally,
    finish: Callable[[pa.Table], pa.Table],
    may_append: Callable[[], bool],
    append_hints: TResourceHints,
) -> Iterator[pa.Table | DataItemWithMeta]:
    """Each table counted (before ``finish``, which may drop columns), then finished.

    One table is held back, so that the last one can carry the write disposition once the whole
    read is known: hints given with an item apply to the whole load of the table. Whether the
    load may append is asked when the first table arrives, before dlt has seen any: the question
    opens the destination, and the next pages download meanwhile.
    """
    held: pa.Table | None = None
    append: bool | None = None
    for table in tables:
        if table is not None and table.num_rows:
            if append is None:
                append = may_append()
            tally.add(table)
            if held is not None:
                yield held
            held = finish(table)
    if held is not None:
        appends = append and not tally.repeated
        yield dlt.mark.with_hints(held, append_hints) if appends else held
