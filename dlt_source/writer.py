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
is registered when the source is built.

dlt's normalize step has no section per source: it rewrites a file when its columns must change
or the destination takes no Parquet (Postgres), a row group (one of our batches) at a time, into
a writer of the same 5,000 rows. The pipeline that extracts our rows gets the same default for
its normalize step, again only when no provider of the user's has one for it, at any level
(``[normalize.data_writer]``, ``[data_writer]``, either under the pipeline's name). That default
covers whatever else the pipeline normalizes: fine for tables and pages, slower for a source
yielding rows one by one into the same pipeline.
"""

from __future__ import annotations

from typing import Any, ClassVar

import dlt
from dlt.common.configuration.container import Container
from dlt.common.configuration.providers import DictionaryProvider
from dlt.common.configuration.specs import ConfigSectionContext
from dlt.common.configuration.specs.known_sections import DATA_WRITER, NORMALIZE, SOURCES
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

from octopush_dlt.settings import SOURCE_NAME

__all__ = ["WRITER_BUFFER_ROWS", "SourceDefaults", "register_writer_defaults"]

# Rows dlt's writer holds before it writes: one, so each batch is written as it arrives.
WRITER_BUFFER_ROWS = 1
_BOUNDED_WRITER = {DATA_WRITER: {"buffer_max_items": WRITER_BUFFER_ROWS}}


class SourceDefaults(DictionaryProvider):
    """dlt settings this source defaults, consulted after every provider the user has.

    dlt first asks every provider for a key under the pipeline's name, then every provider for
    it without: this one answers only the second question, so that a user's setting at any
    level wins.
    """

    NAME: ClassVar[str] = "Octopush source defaults"

    def __init__(self) -> None:
        super().__init__()
        self._config_doc = {SOURCES: {SOURCE_NAME: _BOUNDED_WRITER}, NORMALIZE: _BOUNDED_WRITER}
        self._pipelines: set[str] = set()

    def bound_normalize(self, pipeline_name: str) -> None:
        """The same default for the writer of ``pipeline_name``'s normalize step."""
        self._pipelines.add(pipeline_name)

    def get_value(
        self, key: str, hint: type[Any], pipeline_name: str | None, *sections: str
    ) -> tuple[Any | None, str]:
        value, name = super().get_value(key, hint, "", *sections)
        if value is None:  # every key but the writer's buffer: nothing more to ask
            return None, name
        normalizing = sections[:1] == (NORMALIZE,)
        running = Container()[ConfigSectionContext].pipeline_name
        if pipeline_name or (normalizing and running not in self._pipelines):
            return None, name
        return value, name


def register_writer_defaults(pipeline_name: str | None = None) -> None:
    """Add :class:`SourceDefaults` after dlt's providers, once per set of providers; with
    ``pipeline_name``, bound that pipeline's normalize step too."""
    providers = Container()[PluggableRunContext].providers
    if SourceDefaults.NAME not in providers:
        dlt.config.register_provider(SourceDefaults())
    defaults = providers[SourceDefaults.NAME]
    if pipeline_name is not None and isinstance(defaults, SourceDefaults):
        defaults.bound_normalize(pipeline_name)
