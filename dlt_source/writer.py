"""dlt's data writer told to write each of our batches as it comes, unless the user says otherwise.

dlt's extract step holds ``buffer_max_items`` rows (5,000 by default) before it writes them to
the load package, whatever their size: 5,000 rows of 600 KB are 3 GB. Our resources already
join pages into batches bounded in rows and in bytes (:mod:`octopush_dlt.batches`), so the
writer holding more than the one batch it is given only holds memory. On ordinary rows nothing
changes: a batch of ``BATCH_ROWS`` rows is more than dlt's buffer, so each batch is written at
once either way.

The setting is a default of the lowest priority, for this source's section only
(``[sources.octopush.data_writer]``): dlt resolves a value from its providers in order, and ours
is the last one, so any ``buffer_max_items`` the user set, in any section dlt looks in
(``[sources.octopush.data_writer]``, ``[sources.data_writer]``, ``[data_writer]``; in a file or
an environment variable), wins. It holds under a plain ``pipeline.run(octopush_source())``: it
is registered when the source is built. dlt's normalize step has no section per source; it
rewrites a file only when its columns must change or the destination takes no Parquet, reading
a few row groups (our batches) at a time.
"""

from __future__ import annotations

from typing import ClassVar

import dlt
from dlt.common.configuration.container import Container
from dlt.common.configuration.providers import DictionaryProvider
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

from octopush_dlt.settings import SOURCE_NAME

__all__ = ["WRITER_BUFFER_ROWS", "SourceDefaults", "register_writer_defaults"]

# Rows dlt's writer holds before it writes: one, so each batch is written as it arrives.
WRITER_BUFFER_ROWS = 1


class SourceDefaults(DictionaryProvider):
    """dlt settings this source defaults, consulted after every provider the user has."""

    NAME: ClassVar[str] = "Octopush source defaults"

    def __init__(self) -> None:
        super().__init__()
        self._config_doc = {
            "sources": {SOURCE_NAME: {"data_writer": {"buffer_max_items": WRITER_BUFFER_ROWS}}}
        }


def register_writer_defaults() -> None:
    """Add :class:`SourceDefaults` after dlt's providers, once per set of providers."""
    if SourceDefaults.NAME not in Container()[PluggableRunContext].providers:
        dlt.config.register_provider(SourceDefaults())
