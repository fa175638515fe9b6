"""The messages table through real pipelines into real DuckDB, reading the sandbox over HTTP."""

from __future__ import annotations

import logging
import re

import pytest
import requests
from dlt.pipeline.exceptions import PipelineStepFailed

from octopush_dlt import octopush_source
from octopush_dlt.runner import run_load
from octopush_provider.conversations import to_utc
from octopush_provider.exceptions import OctopushConfigError, OctopushRequestError
from octopush_provider.messages import MessageParent
from octopush_provider.retry import RetryPolicy
from octopush_provider.sandbox import DEFAULT_API_KEY, DEFAULT_API_LOGIN
from tests.helpers import (
    expected_messages,
    expected_table,
    list_requests,
    loaded_messages,
    loaded_table,
    message_requests,
    requested_conversations,
    root_cause,
    sandbox_source,
)


def test_a_full_load_lands_every_message_once_with_its_conversation(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=600, offsets="mixed")
    pipeline = make_pipeline()

    summary = run_load(pipeline, sandbox_source(sandbox))

    assert loaded_messages(pipeline) == expected_messages(sandbox.store)
    assert loaded_table(pipeline) == expected_table(sandbox.store)
    assert summary.messages is not None
    assert summary.messages.messages_loaded == len(expected_messages(sandbox.store))
    assert summary.messages.disagreeing == summary.messages.kept_apart == 0
    # One request a conversation: none has more messages than a page holds.
    assert len(message_requests(sandbox)) == summary.messages.requests == 600


def test_message_columns_land_flattened_and_typed(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=40)
    pipeline = make_pipeline()

    run_load(pipeline, sandbox_source(sandbox))

    row = sandbox.store.snapshot()[0]
    last = sandbox.store.messages(row["conversation_id"])[-1]
    with pipeline.sql_client() as client:
        types = {name: kind for name, kind, *_ in client.execute_sql("DESCRIBE messages")}
        phone, name, text = client.execute_sql(
            "SELECT user_identifiers__phone_number, contact_name, text FROM messages "
            "WHERE message_id = ?",
            last["message_id"],
        )[0]
    assert types["created_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["user_identifiers__phone_number"] == "VARCHAR"
    assert (phone, name) == tuple(row["recipient_details"].values())
    assert text == row["last_message"]


def test_an_incremental_run_reads_messages_of_the_changed_conversations_only(
    make_sandbox, make_pipeline
):
    sandbox = make_sandbox(conversations=1500)
    pipeline = make_pipeline()
    # Without waiting for receipts, which reads more (pinned in test_receipts.py).
    options = {"lag_seconds": 0, "receipts_window_seconds": 0}
    run_load(pipeline, sandbox_source(sandbox, **options))
    changed = sandbox.store.bump(7) + sandbox.store.add_new(3)
    sandbox.clear_requests()

    summary = run_load(pipeline, sandbox_source(sandbox, **options))

    assert sorted(requested_conversations(sandbox)) == sorted(changed)
    assert summary.messages is not None and summary.messages.messages_loaded == sum(
        len(sandbox.store.messages(cid)) for cid in changed
    )
    assert loaded_messages(pipeline) == expected_messages(sandbox.store)


def test_a_run_with_nothing_new_and_no_lag_sends_no_message_request(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=800)
    pipeline = make_pipeline()
    options = {"lag_seconds": 0, "receipts_window_seconds": 0}  # nothing waits for receipts
    run_load(pipeline, sandbox_source(sandbox, **options))
    sandbox.clear_requests()

    summary = run_load(pipeline, sandbox_source(sandbox, **options))

    assert message_requests(sandbox) == []
    assert len(list_requests(sandbox)) == 2  # and the next page, proving the order across the stop
    assert summary.messages is not None and summary.messages.conversations_read == 0
    assert summary.messages.disagreeing == 0


def test_the_consistency_check_covers_the_conversations_the_run_read(
    make_sandbox, make_pipeline, caplog
):
    sandbox = make_sandbox(conversations=100)
    pipeline = make_pipeline()
    options = {"lag_seconds": 0, "receipts_window_seconds": 0}  # only the victim is read again
    run_load(pipeline, sandbox_source(sandbox, **options))
    unread, victim = (row["conversation_id"] for row in sandbox.store.snapshot()[40:42])
    with pipeline.sql_client() as client:  # broken by hand, and not read again below
        client.execute_sql("DELETE FROM messages WHERE conversation_id = %s", unread)
    sandbox.store.bump_ids([victim])
    sandbox.unreadable_ids.add(victim)

    with caplog.at_level(logging.WARNING):
        summary = run_load(pipeline, sandbox_source(sandbox, **options))

    assert summary.messages is not None
    assert (summary.messages.conversations_read, summary.messages.disagreeing) == (1, 1)
    assert "1 of the 1 conversations read disagree with their messages, e.g. " + victim in (
        caplog.text
    )
    assert unread not in caplog.text


def test_faults_and_moving_data_lose_no_message(make_sandbox, make_client, make_pipeline):
    sandbox = make_sandbox(
        conversations=700,
        fault_rate=0.1,
        fault_kinds=("500", "503", "html-502", "reset"),  # retried until the budget ends
    )
    for n in range(3, 400, 25):
        sandbox.before_request(n, lambda store: (store.add_new(2), store.bump(3)))
    retry = RetryPolicy(max_attempts=10, backoff_base=0.005, backoff_max=0.02, budget=10.0)
    client = make_client(sandbox, concurrency=8, per_page=40, retry=retry)
    pipeline = make_pipeline()

    first = run_load(pipeline, octopush_source(client=client, lag_seconds=0))
    sandbox.fault_rate = 0.0
    sandbox.clear_requests()  # also forgets the moves that did not fire
    run_load(pipeline, octopush_source(client=client, lag_seconds=0))

    assert first.retries + first.messages.requests > 700  # type: ignore[union-attr]
    assert loaded_messages(pipeline) == expected_messages(sandbox.store)
    assert loaded_table(pipeline) == expected_table(sandbox.store)


def test_an_unreadable_conversation_id_loads_nothing_wrong_and_is_retried(
    make_sandbox, make_pipeline, caplog
):
    sandbox = make_sandbox(conversations=300)
    victim = sandbox.store.snapshot()[100]["conversation_id"]
    sandbox.unreadable_ids.add(victim)
    pipeline = make_pipeline()
    options = {"lag_seconds": 0, "receipts_window_seconds": 0}  # only the victim is read again

    with caplog.at_level(logging.WARNING):
        summary = run_load(pipeline, sandbox_source(sandbox, **options))

    expected = expected_messages(sandbox.store)
    assert loaded_messages(pipeline) == {
        mid: message for mid, message in expected.items() if message[0] != victim
    }
    assert summary.messages is not None
    assert (summary.messages.kept_apart, summary.messages.disagreeing) == (1, 1)
    assert victim in caplog.text and "could not read that id" in caplog.text

    sandbox.unreadable_ids.clear()
    sandbox.clear_requests()
    again = run_load(pipeline, sandbox_source(sandbox, **options))  # nothing new

    assert requested_conversations(sandbox) == [victim]

    assert loaded_messages(pipeline) == expected_messages(sandbox.store)
    assert again.messages is not None
    assert (again.messages.kept_apart, again.messages.disagreeing) == (0, 0)


def test_a_killed_first_load_redoes_at_most_one_slice(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=1000)
    # After 700 requests, the API refuses everything: the load dies part-way, in slice 3 or 4.
    sandbox.before_request(700, lambda store: sandbox.add_fault("400", times=10**6))
    pipeline = make_pipeline()

    with pytest.raises(PipelineStepFailed) as raised:
        run_load(pipeline, sandbox_source(sandbox, slice_conversations=200))
    assert isinstance(root_cause(raised.value), OctopushRequestError)
    before = {
        record.query["conversation_id"].removeprefix("cid_")
        for record in message_requests(sandbox)
        if record.status == 200
    }
    sandbox.clear_faults()
    sandbox.clear_requests()

    summary = run_load(pipeline, sandbox_source(sandbox, slice_conversations=200))

    redone = before & set(requested_conversations(sandbox))
    assert 0 < len(redone) <= 200
    assert len(before) + len(requested_conversations(sandbox)) - len(redone) == 1000
    assert summary.slices > 1
    assert loaded_messages(pipeline) == expected_messages(sandbox.store)
    assert loaded_table(pipeline) == expected_table(sandbox.store)


class _UnreadableOnce(set[str]):
    """The sandbox's unreadable ids: those of ``once`` for their first request only."""

    def __init__(self, *, once: set[str], always: set[str]) -> None:
        super().__init__(always)
        self._once = set(once)

    def __contains__(self, conversation_id: object) -> bool:
        if conversation_id in self._once:
            self._once.discard(conversation_id)  # type: ignore[arg-type]
            return True
        return super().__contains__(conversation_id)


def test_a_first_load_in_slices_counts_what_still_disagrees_at_its_end(
    make_sandbox, make_pipeline, caplog
):
    sandbox = make_sandbox(conversations=600)
    # The two oldest conversations: both in the first slice, which takes the oldest first.
    mended, broken = (row["conversation_id"] for row in sandbox.store.snapshot()[-2:])
    sandbox.unreadable_ids = _UnreadableOnce(once={mended}, always={broken})
    pipeline = make_pipeline()

    with caplog.at_level(logging.WARNING, logger="octopush_dlt.runner"):
        summary = run_load(pipeline, sandbox_source(sandbox, slice_conversations=200))

    assert summary.slices == 3 and summary.messages is not None
    # Both disagreed after the first slice; the next slice's retry mended one.
    assert (summary.messages.kept_apart, summary.messages.disagreeing) == (1, 1)
    [line] = [record.getMessage() for record in caplog.records if "disagree" in record.msg]
    assert summary.messages.conversations_read == 600 + 1 + 2  # with the retries of both
    assert line.startswith("Octopush: 1 of the 603 conversations read disagree") and broken in line
    assert mended not in line


def test_a_first_load_in_slices_is_exact_while_the_data_moves(make_sandbox, make_pipeline, caplog):
    sandbox = make_sandbox(conversations=900)
    for n in range(5, 1500, 40):
        sandbox.before_request(n, lambda store: (store.add_new(1), store.bump(2)))
    pipeline = make_pipeline()

    with caplog.at_level(logging.INFO, logger="octopush_dlt.runner"):
        first = run_load(pipeline, sandbox_source(sandbox, slice_conversations=250, lag_seconds=0))
    sandbox.clear_requests()
    run_load(pipeline, sandbox_source(sandbox, slice_conversations=250, lag_seconds=0))

    assert first.slices >= 4
    progress = re.search(r"slice 1 committed, ([\d,]+) of ([\d,]+) conversations", caplog.text)
    assert progress is not None
    done, known = (int(figure.replace(",", "")) for figure in progress.groups())
    assert done == 250 and known >= 900
    assert loaded_messages(pipeline) == expected_messages(sandbox.store)
    assert loaded_table(pipeline) == expected_table(sandbox.store)


@pytest.mark.parametrize(
    ("resources", "tables"),
    [
        (["conversations"], {"conversations"}),
        (["conversations", "messages"], {"conversations", "messages"}),
    ],
)
def test_resources_choose_the_tables(make_sandbox, make_pipeline, resources, tables):
    sandbox = make_sandbox(conversations=60)
    pipeline = make_pipeline()

    summary = run_load(pipeline, sandbox_source(sandbox, resources=resources))

    assert set(pipeline.default_schema.data_table_names()) == tables
    assert (summary.messages is not None) == ("messages" in tables)
    assert bool(message_requests(sandbox)) == ("messages" in tables)


@pytest.mark.parametrize("resources", [["messages"], ["conversations", "replies"], []])
def test_resources_without_conversations_or_unknown_are_refused(resources):
    with pytest.raises(OctopushConfigError, match="resources"):
        octopush_source(api_login="x", api_key="y", resources=resources)


@pytest.mark.parametrize(("given", "sent"), [("cid_0a1b", "cid_0a1b"), ("0a1b", "cid_0a1b")])
def test_the_conversation_id_is_sent_with_one_cid_prefix(sandbox, make_client, given, sent):
    list(make_client(sandbox).iter_messages(given))

    assert [record.query["conversation_id"] for record in message_requests(sandbox)] == [sent]


def test_the_sandbox_answers_50_messages_a_page_and_ignores_an_unreadable_id(sandbox):
    session = requests.Session()
    session.headers.update({"api-login": DEFAULT_API_LOGIN, "api-key": DEFAULT_API_KEY})
    url = sandbox.base_url + "/conversations/messages/list"
    row = sandbox.store.snapshot()[0]

    own = session.get(url, params={"conversation_id": "cid_" + row["conversation_id"]}).json()
    unreadable = session.get(url, params={"conversation_id": row["conversation_id"]}).json()

    assert own == sandbox.store.messages(row["conversation_id"])[:50]
    assert len(unreadable) == 50
    assert {m["user_identifier"] for m in unreadable} != {row["recipient_details"]["phone_number"]}


@pytest.mark.parametrize("past_end", ["empty", "404"])
def test_the_sandbox_filters_messages_by_contact_and_ignores_what_it_cannot_read(
    make_sandbox, past_end
):
    sandbox = make_sandbox(conversations=30, past_end=past_end)
    rows = sandbox.store.snapshot()
    a, b = rows[3]["conversation_id"], rows[7]["conversation_id"]
    phone = rows[3]["recipient_details"]["phone_number"]
    fields = rows[7]["recipient_details"] | {"email": "Ann@Example.com", "facebook_id": "4242"}
    sandbox.store.rewrite(b, {"recipient_details": fields})
    session = requests.Session()
    session.headers.update({"api-login": DEFAULT_API_LOGIN, "api-key": DEFAULT_API_KEY})
    url = sandbox.base_url + "/conversations/messages/list"

    def answer(**params):
        response = session.get(url, params={"per_page": 500, **params})
        return response.status_code, response.json()

    def conversations(**params):
        status, messages = answer(**params)
        assert status == 200, params
        return {message["message_id"].split("_")[1] for message in messages}

    nothing = {"empty": (200, []), "404": (404, {"code": 1004, "message": "No conversation found"})}
    everything = answer()
    assert everything == (200, sandbox.store.messages_page(1, 500))
    assert conversations(phone_number=f"{phone[:3]} {phone[3:]}") == {a}
    assert conversations(email="ann@example.com") == conversations(facebook_id="fid_4242") == {b}
    assert conversations(contact=f"{phone},fid_4242") == {a, b}
    assert conversations(contact=f"{phone},nobody@example.com") == {a}
    assert conversations(conversation_id=f"cid_{b}", email="ann@example.com") == {b}
    assert answer(conversation_id=f"cid_{a}", email="ann@example.com") == nothing[past_end]
    assert answer(email="nobody@example.com") == nothing[past_end]
    assert answer(phone_number=phone, email="ann@example.com") == nothing[past_end]
    for unreadable in ({"phone_number": "abc"}, {"email": "ann"}, {"facebook_id": "4242"}):
        assert answer(**unreadable) == everything, unreadable
    assert answer(contact="?,fid_") == answer(phone_number="12") == everything


def test_the_sandbox_messages_agree_with_their_conversations(make_sandbox):
    store = make_sandbox(conversations=200).store
    bumped = store.bump(5)

    for row in store.snapshot():
        messages = store.messages(row["conversation_id"])
        assert len(messages) == row["number_of_messages"]
        assert messages[-1]["text"] == row["last_message"]
        assert to_utc(messages[-1]["created_at"]) == to_utc(row["last_message_at"])
        assert {m["user_identifier"] for m in messages} == {
            row["recipient_details"]["phone_number"]
        }
    assert all(len(store.messages(cid)) >= 2 for cid in bumped)


@pytest.mark.parametrize(("lag_seconds", "lands"), [(0, False), (400 * 86_400, True)])
def test_delivery_status_changes_land_when_their_conversation_is_inside_the_lag(
    make_sandbox, make_pipeline, lag_seconds, lands
):
    sandbox = make_sandbox(conversations=150)
    pipeline = make_pipeline()
    options = {"lag_seconds": lag_seconds, "receipts_window_seconds": 0}  # the lag alone
    run_load(pipeline, sandbox_source(sandbox, **options))
    delivered = sandbox.store.deliver(4)
    assert len(delivered) == 4

    run_load(pipeline, sandbox_source(sandbox, **options))

    statuses = {mid: message[1] for mid, message in loaded_messages(pipeline).items()}
    assert all((statuses[mid] == "delivered") == lands for mid in delivered)
    assert lands == (loaded_messages(pipeline) == expected_messages(sandbox.store))


def test_a_first_load_capped_by_max_pages_is_finished_by_the_next_run(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=420)
    pipeline = make_pipeline()

    capped = run_load(pipeline, sandbox_source(sandbox, max_pages=2, slice_conversations=150))
    full = run_load(pipeline, sandbox_source(sandbox, slice_conversations=150))

    assert (capped.stop_reason, capped.slices) == ("max_pages", 1)
    assert full.slices == 3
    assert loaded_table(pipeline) == expected_table(sandbox.store)
    assert loaded_messages(pipeline) == expected_messages(sandbox.store)


def test_without_a_count_a_read_stops_at_the_first_page_that_is_not_the_conversations(
    make_sandbox, make_client
):
    sandbox = make_sandbox(conversations=300)
    victim = sandbox.store.snapshot()[0]
    sandbox.unreadable_ids.add(victim["conversation_id"])  # answered with everyone's messages
    parent = MessageParent(
        conversation_id=victim["conversation_id"],
        phone_number=victim["recipient_details"]["phone_number"],
    )

    [result] = make_client(sandbox).read_messages([parent])

    assert result.error is not None and result.messages == []
    assert requested_conversations(sandbox) == [victim["conversation_id"]]  # one page, not all


def test_a_read_without_a_count_capped_by_max_pages_is_kept_apart_not_cut_short(
    make_sandbox, make_client
):
    sandbox = make_sandbox(conversations=300)
    chatty = next(c for c in sandbox.store.snapshot() if c["number_of_messages"] >= 3)
    parent = MessageParent(conversation_id=chatty["conversation_id"])  # no count to stop by

    [result] = make_client(sandbox, per_page=1, max_pages=2).read_messages([parent])

    assert result.messages == []  # not the first two of them, as if they were all
    assert result.error is not None and "max_pages" in str(result.error)
