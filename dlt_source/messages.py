"""The ``messages`` resource: a transformer reading the messages of every conversation read.

Whatever the ``conversations`` resource yields in a run (new, updated, or re-read inside the
lag) has its messages read, several conversations at once, and merged on ``message_id`` with the
conversation's id added. A conversation whose answer cannot be its own (see
:mod:`octopush_provider.messages`) is kept apart: nothing of it is loaded, it is named in the
log and the summary, and it is read again at the start of every later run that reads messages,
until it succeeds. Most of a run's conversations kept apart (or too many at once) means the
endpoint ignores the filter: the run fails, whoever runs it. The ids of the conversations a run
read wait for the runner's consistency check (:func:`conversations_read`). Once every changed
conversation is read, those waiting for delivery receipts are read again
(:mod:`octopush_dlt.receipts`).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import dlt
import pyarrow as pa
from dlt.extract.resource import DltResource

from octopush_dlt.arrow import ExtraTypes, column_hints, to_table
from octopush_dlt.batches import batches
from octopush_dlt.entry_points import write_disposition
from octopush_dlt.instants import from_micros, table_cursor_micros
from octopush_dlt.privacy import PrivacyPolicy
from octopush_dlt.progress import Progress
from octopush_dlt.receipts import ReceiptFigures, ReceiptPolicy, ReceiptTracker
from octopush_dlt.settings import (
    MESSAGES_RESOURCE_NAME,
    NAMED_IN_LOG,
    PRIMARY_KEY,
)
from octopush_dlt.tables import CONVERSATIONS, MESSAGES
from octopush_provider.client import OctopushClient
from octopush_provider.exceptions import OctopushMismatchError
from octopush_provider.messages import ConversationMessages, MessageParent

logger = logging.getLogger(__name__)

# Runs whose read ids wait for the runner; a run made without it (plain pipeline.run) leaves its
# ids here until this many later runs push them out.
_RUNS_KEPT = 4
_READ_IDS: OrderedDict[str, list[str]] = OrderedDict()  # load id -> conversations read


def conversations_read(load_id: str) -> list[str]:
    """The ids of the conversations whose messages the run ``load_id`` read; handed over once."""
    return _READ_IDS.pop(load_id, [])


def _read_ids(load_id: str) -> list[str]:
    ids = _READ_IDS.setdefault(load_id, [])
    while len(_READ_IDS) > _RUNS_KEPT:
        _READ_IDS.popitem(last=False)
    return ids


# More conversations kept apart than this, and the endpoint is not reading ids at all.
MAX_KEPT_APART = 100
# Kept apart in one run: more than this share of the conversations it read (and at least
# KEPT_APART_FLOOR of them) is an endpoint that ignores the filter, not a few odd answers.
KEPT_APART_SHARE = 0.5
KEPT_APART_FLOOR = 2
_PHONE = CONVERSATIONS.nested_prefix + "phone_number"
_COUNT = "number_of_messages"


@dataclass(kw_only=True)
class MessagesRead:
    """Figures of one run's messages read, for the summary."""

    load_id: str  # the run these figures belong to: a run that reads no conversation writes none
    conversations: int = 0
    messages: int = 0
    requests: int = 0
    kept_apart: int = 0
    receipts: ReceiptFigures = field(default_factory=ReceiptFigures)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parents(conversations: pa.Table | list[Any]) -> list[MessageParent]:
    if not isinstance(conversations, pa.Table):  # the empty batch of a run with nothing new
        return []
    if _PHONE not in conversations.schema.names:  # dropped: nothing to check the answers with
        conversations = conversations.append_column(
            _PHONE, pa.nulls(conversations.num_rows, pa.string())
        )
    columns = conversations.select([PRIMARY_KEY, _PHONE, _COUNT]).to_pydict()
    # From microseconds: Arrow's own datetimes import pandas (see octopush_dlt.arrow_values).
    moments = map(from_micros, table_cursor_micros(conversations))
    return [
        MessageParent(
            conversation_id=cid, phone_number=phone, number_of_messages=count, last_message_at=at
        )
        for cid, phone, count, at in zip(
            columns[PRIMARY_KEY],
            columns[_PHONE],
            columns[_COUNT],
            moments,
            strict=True,
        )
    ]


class _Newest:
    """The conversations read at the newest ``last_message_at`` so far, with their counts.

    The conversations resource reads again the conversations at its cursor's instant (another
    one may have arrived in the same second). With no lag, the messages of those whose count
    did not change are not read again: a run with nothing new sends no message request.
    """

    def __init__(self, state: dict[str, Any]) -> None:
        self._state = state.setdefault("newest_read", {"at": None, "counts": {}})

    def unchanged(self, parent: MessageParent) -> bool:
        at, counts = self._state["at"], self._state["counts"]
        return (
            at is not None
            and parent.last_message_at == at
            and counts.get(parent.conversation_id) == parent.number_of_messages
        )

    def note(self, parent: MessageParent) -> None:
        at = parent.last_message_at
        if at is None or (self._state["at"] is not None and at < self._state["at"]):
            return
        if at != self._state["at"]:
            self._state["at"], self._state["counts"] = at, {}
        self._state["counts"][parent.conversation_id] = parent.number_of_messages


def _parent_state(parent: MessageParent) -> dict[str, Any]:
    return {"phone_number": parent.phone_number, "number_of_messages": parent.number_of_messages}


class _Reader:
    """Reads the messages of the conversations of one run; retries what was kept apart before."""

    # Set for each run by _start_run, which the first call of a run makes.
    _started: datetime
    _read: list[str]
    _retried: bool
    _extra_types: ExtraTypes
    _fresh_read: int
    _fresh_kept: int
    _retrying: set[str]
    _replacing: bool
    _progress: Progress

    def __init__(
        self,
        client: OctopushClient,
        *,
        reread_unchanged: bool,
        privacy: PrivacyPolicy,
        receipts: ReceiptPolicy,
    ) -> None:
        self._client = client
        self._privacy = privacy
        self._receipts = receipts
        self._reread_unchanged = reread_unchanged
        self._figures = MessagesRead(load_id="")  # no run yet: the first call starts one

    def __call__(self, conversations: pa.Table | list[Any]) -> Iterator[pa.Table]:
        load_id = dlt.current.load_package_state()["load_id"]
        if load_id != self._figures.load_id:  # a new run of the same source object
            self._start_run(load_id)
        state = dlt.current.resource_state()
        kept: dict[str, dict[str, Any]] = state.setdefault("kept_apart", {})
        newest = _Newest(state)
        receipts = ReceiptTracker(
            state, self._receipts, now=self._started, figures=self._figures.receipts
        )
        parents = _parents(conversations)
        if self._privacy.touches(_PHONE):  # a pseudonym cannot be checked against an answer
            parents = [replace(parent, phone_number=None) for parent in parents]
        if not (self._reread_unchanged or self._replacing):
            parents = [parent for parent in parents if not newest.unchanged(parent)]
        if not self._retried:
            self._retried = True
            fresh = {parent.conversation_id for parent in parents}
            retried = [
                MessageParent(conversation_id=cid, **saved)
                for cid, saved in kept.items()
                if cid not in fresh
            ]
            self._retrying = {parent.conversation_id for parent in retried}
            parents += retried
        last_batch = not isinstance(conversations, pa.Table)  # the empty batch ending the run
        # Every changed conversation is read by then: now those waiting for receipts.
        again = self._add_waiting(receipts, parents) if last_batch else set()
        self._progress.expect(len(parents))
        results = self._client.read_messages(parents)
        loaded = self._loaded(results, kept=kept, newest=newest, receipts=receipts, again=again)
        # Batched as the conversations are (octopush_dlt.batches): bounded in rows and bytes.
        for batch in batches(
            loaded, rows=lambda read: len(read.messages), size=lambda read: read.size
        ):
            yield self._table(
                [
                    {**message, PRIMARY_KEY: read.parent.conversation_id}
                    for read in batch
                    for message in read.messages
                ]
            )
        self._figures.kept_apart = len(kept)
        if last_batch:
            receipts.finish()
        state["last_read"] = self._figures.as_dict()
        if last_batch:
            self._check_endpoint()

    def _loaded(
        self,
        results: Iterator[ConversationMessages],
        *,
        kept: dict[str, dict[str, Any]],
        newest: _Newest,
        receipts: ReceiptTracker,
        again: set[str],
    ) -> Iterator[ConversationMessages]:
        """The conversations' messages that may be loaded, each counted; the rest kept apart."""
        for result in results:
            self._progress.add(requests=result.requests)
            cid = result.parent.conversation_id
            self._figures.conversations += 1
            self._read.append(cid)
            self._figures.requests += result.requests
            first_time = cid not in self._retrying
            self._fresh_read += first_time
            if cid in again:
                receipts.figures.requests += result.requests
            if result.error is not None:
                self._fresh_kept += first_time
                self._keep_apart(kept, result.parent, result.error)
                continue
            kept.pop(cid, None)
            newest.note(result.parent)
            receipts.observe(result.parent, result.messages)
            yield result

    def _start_run(self, load_id: str) -> None:
        self._figures, self._retried = MessagesRead(load_id=load_id), False
        self._fresh_read = self._fresh_kept = 0
        self._retrying = set()
        self._started = datetime.now(UTC)
        self._read = _read_ids(load_id)
        self._progress = Progress("messages", unit="conversations")
        # Extra fields keep the type they took first: in the destination, or in this run.
        table = dlt.current.source_schema().tables.get(MESSAGES.name, {})
        self._extra_types = ExtraTypes(table.get("columns"))
        # A table replaced holds only what this run reads: every conversation's messages.
        self._replacing = write_disposition(dlt.current.resource()) == "replace"

    def _add_waiting(self, receipts: ReceiptTracker, parents: list[MessageParent]) -> set[str]:
        """Add to ``parents`` the conversations waiting for receipts not read yet; their ids."""
        due = receipts.due(read=[*self._read, *(parent.conversation_id for parent in parents)])
        parents += due
        return {parent.conversation_id for parent in due}

    def _check_endpoint(self) -> None:
        """Fail a run in which most answers were other conversations' messages.

        Only the conversations the run read for the first time count: those kept apart before
        and still odd would otherwise fail every later run with nothing new.
        """
        read, kept = self._fresh_read, self._fresh_kept
        if kept >= KEPT_APART_FLOOR and kept > KEPT_APART_SHARE * read:
            raise OctopushMismatchError(
                f"{kept} of the {read} conversations read got messages that cannot be theirs: "
                f"the messages endpoint {self._client.messages_url} seems to ignore the "
                "conversation_id filter; check messages_path. Nothing of this run was loaded"
            )

    def _table(self, rows: list[dict[str, Any]]) -> pa.Table:
        self._figures.messages += len(rows)
        return self._privacy.apply(to_table(rows, MESSAGES, extra_types=self._extra_types))

    def _keep_apart(
        self, kept: dict[str, dict[str, Any]], parent: MessageParent, error: OctopushMismatchError
    ) -> None:
        kept[parent.conversation_id] = _parent_state(parent)
        if len(kept) > MAX_KEPT_APART:
            raise OctopushMismatchError(
                f"{len(kept)} conversations got messages that cannot be theirs: the messages "
                "endpoint seems to ignore every conversation_id; check messages_path. "
                f"Last: {error}"
            )
        if len(kept) <= NAMED_IN_LOG:
            logger.warning("Octopush messages kept apart, retried next run: %s", error)


def messages_resource(
    conversations: DltResource,
    client: OctopushClient,
    *,
    lag: float,
    privacy: PrivacyPolicy | None = None,
    receipts: ReceiptPolicy | None = None,
) -> DltResource:
    """The ``messages`` transformer of a ``conversations`` resource read with ``lag``.

    ``privacy`` hashes and drops columns of the messages as it does those of the conversations;
    ``receipts`` says which conversations wait for delivery receipts, to be read again.
    """
    privacy = privacy or PrivacyPolicy()
    reader = _Reader(
        client, reread_unchanged=lag > 0, privacy=privacy, receipts=receipts or ReceiptPolicy()
    )

    def read(conversations: pa.Table | list[Any]) -> Iterator[pa.Table]:
        yield from reader(conversations)

    return dlt.transformer(
        read,
        data_from=conversations,
        name=MESSAGES_RESOURCE_NAME,
        table_name=MESSAGES.name,
        primary_key=MESSAGES.primary_key,
        write_disposition="merge",
        columns=privacy.hints(column_hints(MESSAGES)),
    )
