"""The dlt source's settings, checked in one place before any I/O.

:func:`check_options` turns what ``octopush_source`` was given (by dlt's config, the CLI's
flags or the Airflow operator) into a :class:`SourceOptions`, or raises one
:class:`~octopush_provider.exceptions.OctopushConfigError` naming the setting at fault.
:func:`source_client` builds the client from the credentials, or checks the one handed over.

What the client itself checks (``base_url``, ``per_page``, ``concurrency``, timeouts) is left to
its constructor, so that one setting has one check and one message. ``max_pages`` is checked
here: the source's cap applies to its list reads only, passed to each read, while a client's own
``max_pages`` also caps each conversation's messages, so it is not handed to the constructor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from octopush_dlt.deletions import DeletionPolicy
from octopush_dlt.entry_points import check_slice_size
from octopush_dlt.privacy import PrivacyPolicy
from octopush_dlt.receipts import ReceiptPolicy
from octopush_dlt.tables import CONVERSATIONS, MESSAGES, TABLES
from octopush_provider.client import OctopushClient
from octopush_provider.conversations import to_utc
from octopush_provider.exceptions import OctopushConfigError

__all__ = ["RESOURCES", "SourceOptions", "check_options", "source_client"]

RESOURCES = tuple(table.name for table in TABLES)
# Where ``octopush_source`` reads its credentials, named by the client's errors.
WHERE = "dlt config section [sources.octopush]"


@dataclass(frozen=True, kw_only=True)
class SourceOptions:
    """The source's settings once checked: what the resources are built with."""

    resources: tuple[str, ...]
    start: datetime | None
    lag_seconds: float
    clock_skew_seconds: float
    max_pages: int | None
    slice_conversations: int | None
    privacy: PrivacyPolicy
    deletions: DeletionPolicy | None
    receipts: ReceiptPolicy

    @property
    def with_messages(self) -> bool:
        """Whether the messages table is loaded too."""
        return MESSAGES.name in self.resources


def check_options(
    *,
    resources: Sequence[str],
    start_date: str | None,
    lag_seconds: float,
    clock_skew_seconds: float,
    max_pages: int | None,
    slice_conversations: int | None,
    hash_columns: Sequence[str] | str | None,
    drop_columns: Sequence[str] | str | None,
    hash_secret: str | None,
    detect_deletes: bool,
    deletes_mode: str,
    deletes_min_share: float,
    receipts_window_seconds: float,
    receipts_max_conversations: int,
    final_statuses: Sequence[str],
) -> SourceOptions:
    """Check the source's settings (``octopush_source`` documents each); raises
    :class:`OctopushConfigError` (or its child ``OctopushPrivacyError``) on the first wrong one."""
    chosen = _check_resources(resources)
    privacy = PrivacyPolicy.build(
        hash_columns=hash_columns, drop_columns=drop_columns, hash_secret=hash_secret
    )
    deletions = (
        DeletionPolicy.build(mode=deletes_mode, min_share=deletes_min_share)
        if detect_deletes
        else None
    )
    if slice_conversations is not None:
        check_slice_size(slice_conversations)
    for name, seconds in (("lag_seconds", lag_seconds), ("clock_skew_seconds", clock_skew_seconds)):
        if seconds < 0:
            raise OctopushConfigError(f"{name} must be >= 0, got {seconds!r}")
    if max_pages is not None and (
        isinstance(max_pages, bool) or not isinstance(max_pages, int) or max_pages < 1
    ):
        raise OctopushConfigError(f"max_pages must be a whole number >= 1, got {max_pages!r}")
    try:
        start = to_utc(start_date) if start_date else None
    except ValueError as error:
        raise OctopushConfigError(
            f"start_date must be an ISO 8601 date and time: {error}"
        ) from None
    receipts = ReceiptPolicy.build(
        window_seconds=receipts_window_seconds,
        max_conversations=receipts_max_conversations,
        final_statuses=final_statuses,
        clock_skew_seconds=clock_skew_seconds,
    )
    return SourceOptions(
        resources=chosen,
        start=start,
        lag_seconds=lag_seconds,
        clock_skew_seconds=clock_skew_seconds,
        max_pages=max_pages,
        slice_conversations=slice_conversations,
        privacy=privacy,
        deletions=deletions,
        receipts=receipts,
    )


def source_client(
    client: object,
    *,
    api_login: str | None,
    api_key: str | None,
    base_url: str,
    conversations_path: str,
    messages_path: str,
    per_page: int,
    concurrency: int,
    allow_insecure_http: bool,
) -> OctopushClient:
    """The client handed over, or one built from the credentials (which it checks itself)."""
    if client is not None:
        if not isinstance(client, OctopushClient):
            raise OctopushConfigError(
                f"client must be an OctopushClient, got {type(client).__name__}"
            )
        return client
    missing = [
        name for name, value in (("api_login", api_login), ("api_key", api_key)) if not value
    ]
    if missing:
        raise OctopushConfigError(
            f"{' and '.join(missing)} missing: set them under [sources.octopush] in "
            ".dlt/secrets.toml, or as SOURCES__OCTOPUSH__API_LOGIN / SOURCES__OCTOPUSH__API_KEY"
        )
    return OctopushClient(
        api_login=str(api_login),
        api_key=str(api_key),
        base_url=base_url,
        path=conversations_path,
        messages_path=messages_path,
        per_page=per_page,
        concurrency=concurrency,
        allow_insecure_http=allow_insecure_http,
        where=WHERE,
    )


def _check_resources(resources: Sequence[str]) -> tuple[str, ...]:
    """The chosen resources; messages are read for the conversations read, so need them."""
    chosen = (resources,) if isinstance(resources, str) else tuple(resources)
    unknown = [name for name in chosen if name not in RESOURCES]
    if unknown or not chosen:
        raise OctopushConfigError(
            f"resources must be some of {', '.join(RESOURCES)}; got {list(chosen)!r}"
        )
    if CONVERSATIONS.name not in chosen:
        raise OctopushConfigError(
            "resources: messages are read for the conversations each run reads, so "
            f"'{CONVERSATIONS.name}' must be loaded with them; got {list(chosen)!r}"
        )
    return chosen
