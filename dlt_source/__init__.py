"""dlt source for Octopush conversations and their messages: exact, incremental and fast.

``octopush_source()`` reads its settings from the ``[sources.octopush]`` section of dlt's config
and secrets (or ``SOURCES__OCTOPUSH__API_KEY`` style environment variables), or takes a ready
:class:`~octopush_provider.client.OctopushClient`, which is how the Airflow operator hands over
its hook's.

What a user imports is here: ``octopush_source``, ``run_load`` (:mod:`octopush_dlt.runner`),
:class:`OctopushError`, the root of every error a load raises, and the setting errors: the
core's :class:`OctopushConfigError` and the dlt layer's own (:mod:`octopush_dlt.errors`). The
core's other errors (auth, connection, response, ...) are ``octopush_provider``'s to export.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dlt
from dlt.common.typing import TSecretStrValue

from octopush_dlt.conversations import conversations_resource
from octopush_dlt.deletions import DEFAULT_MIN_SHARE
from octopush_dlt.errors import OctopushDeletionError, OctopushPrivacyError
from octopush_dlt.messages import messages_resource
from octopush_dlt.options import RESOURCES, check_options, source_client
from octopush_dlt.outside_airflow import skip_airflow_secrets_outside_airflow
from octopush_dlt.receipts import (
    DEFAULT_FINAL_STATUSES,
    DEFAULT_MAX_CONVERSATIONS,
    DEFAULT_WINDOW_SECONDS,
)
from octopush_dlt.runner import run_load
from octopush_dlt.settings import (
    DEFAULT_CLOCK_SKEW_SECONDS,
    DEFAULT_LAG_SECONDS,
    SOURCE_NAME,
)
from octopush_dlt.writer import register_writer_defaults
from octopush_provider.exceptions import OctopushConfigError, OctopushError
from octopush_provider.settings import (
    CONVERSATIONS_PATH,
    DEFAULT_BASE_URL,
    DEFAULT_PER_PAGE,
    LOAD_CONCURRENCY,
    MESSAGES_PATH,
)

__all__ = [
    "RESOURCES",
    "OctopushConfigError",
    "OctopushDeletionError",
    "OctopushError",
    "OctopushPrivacyError",
    "octopush_source",
    "run_load",
]

# Before dlt first resolves its configuration, so that a plain script keeps its log.
skip_airflow_secrets_outside_airflow()


@dlt.source(name=SOURCE_NAME, max_table_nesting=0)
def octopush_source(
    *,
    api_login: str | None = dlt.secrets.value,
    api_key: str | None = dlt.secrets.value,
    base_url: str = DEFAULT_BASE_URL,
    conversations_path: str = CONVERSATIONS_PATH,
    messages_path: str = MESSAGES_PATH,
    resources: Sequence[str] = RESOURCES,
    slice_conversations: int | None = None,
    per_page: int = DEFAULT_PER_PAGE,
    concurrency: int = LOAD_CONCURRENCY,
    start_date: str | None = None,
    lag_seconds: float = DEFAULT_LAG_SECONDS,
    clock_skew_seconds: float = DEFAULT_CLOCK_SKEW_SECONDS,
    allow_insecure_http: bool = False,
    max_pages: int | None = None,
    hash_columns: list[str] | None = None,
    drop_columns: list[str] | None = None,
    hash_secret: TSecretStrValue | None = dlt.secrets.value,
    detect_deletes: bool = False,
    deletes_mode: str = "soft",
    deletes_min_share: float = DEFAULT_MIN_SHARE,
    receipts_window_seconds: float = DEFAULT_WINDOW_SECONDS,
    receipts_max_conversations: int = DEFAULT_MAX_CONVERSATIONS,
    final_statuses: Sequence[str] = DEFAULT_FINAL_STATUSES,
    client: Any = None,
) -> Any:
    """Octopush conversations, loaded incrementally on ``last_message_at``, and their messages.

    ``pipeline.run(octopush_source())`` loads the whole account in one run, and dlt's idioms on
    it hold (:mod:`octopush_dlt.entry_points`); :func:`octopush_dlt.runner.run_load` adds
    slices, checks and a summary around the same run.

    Args:
        api_login: The account's login (``[sources.octopush]`` in ``.dlt/secrets.toml``).
        api_key: The account's API key; never logged.
        base_url: The API's base URL.
        conversations_path: The list endpoint, under ``base_url``.
        messages_path: The messages endpoint, under ``base_url``.
        resources: The tables: ``conversations``, ``messages`` (read for the conversations read
            in the run, so it needs them), or both (the default). ``with_resources`` on the
            source selects the same way.
        slice_conversations: Commit a first load with messages every this many conversations,
            one run a slice. Unset (the default), one run loads everything; the runner slices
            by 5,000 by itself. A plain ``pipeline.run`` that a slice ends says how much
            remains at WARNING level.
        per_page: Conversations asked for per page.
        concurrency: Pages (and message reads) in flight at once.
        start_date: ISO 8601; the first load reads conversations active since then.
        lag_seconds: Re-read this much before the cursor on every run.
        clock_skew_seconds: A ``last_message_at`` further than this after the start of the run
            is in the future: loaded, but it never moves the cursor.
        allow_insecure_http: Allow an ``http://`` base URL (a local sandbox).
        max_pages: A safety cap on the pages one run reads: a capped run loads what it read but
            keeps the cursor, and the backfill of a first load, where they were.
        hash_columns: Columns replaced by their HMAC-SHA256 keyed by ``hash_secret``, in every
            table that has them, before dlt sees them (:mod:`octopush_dlt.privacy`).
        drop_columns: Columns removed from every table that has them.
        hash_secret: The HMAC key of ``hash_columns``.
        detect_deletes: Read the whole list, so that the runner flags (``deletes_mode="soft"``)
            or removes (``"hard"``, with their messages) the conversations it no longer returns
            (:mod:`octopush_dlt.deletions`). Marking happens after the load: under a plain
            ``pipeline.run`` the run is refused.
        deletes_mode: ``soft`` or ``hard``.
        deletes_min_share: Mark nothing when the list returns fewer than this share of the
            conversations the table holds.
        receipts_window_seconds: Read again, on every run, the conversations holding an
            outbound message sent this recently whose ``delivery_status`` is not final, so that
            delivery receipts land (:mod:`octopush_dlt.receipts`); 0 turns it off.
        receipts_max_conversations: At most this many conversations wait for receipts; past
            it, the oldest are dropped with a warning.
        final_statuses: The statuses no receipt changes (compared ignoring case).
        client: A configured :class:`OctopushClient` to reuse (the Airflow operator hands over
            its hook's); the credential and connection settings are then ignored.
    """
    options = check_options(
        resources=resources,
        start_date=start_date,
        lag_seconds=lag_seconds,
        clock_skew_seconds=clock_skew_seconds,
        max_pages=max_pages,
        slice_conversations=slice_conversations,
        hash_columns=hash_columns,
        drop_columns=drop_columns,
        hash_secret=hash_secret,
        detect_deletes=detect_deletes,
        deletes_mode=deletes_mode,
        deletes_min_share=deletes_min_share,
        receipts_window_seconds=receipts_window_seconds,
        receipts_max_conversations=receipts_max_conversations,
        final_statuses=final_statuses,
    )
    register_writer_defaults()
    client = source_client(
        client,
        api_login=api_login,
        api_key=api_key,
        base_url=base_url,
        conversations_path=conversations_path,
        messages_path=messages_path,
        per_page=per_page,
        concurrency=concurrency,
        allow_insecure_http=allow_insecure_http,
    )
    conversations = conversations_resource(
        client,
        start_date=options.start,
        lag=options.lag_seconds,
        clock_skew=options.clock_skew_seconds,
        max_pages=options.max_pages,
        slice_conversations=options.slice_conversations,
        privacy=options.privacy,
        deletions=options.deletions,
    )
    if not options.with_messages:
        return conversations
    return [
        conversations,
        messages_resource(
            conversations,
            client,
            lag=options.lag_seconds,
            privacy=options.privacy,
            receipts=options.receipts,
        ),
    ]
