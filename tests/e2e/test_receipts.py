"""Delivery receipts land: the conversations waiting for them are read again, and only those.

End to end on the sandbox over HTTP into DuckDB; the sandbox's receipts arrive as its clock moves
(``store.advance``). What waits is computed here from the sandbox's own messages, not by the
code under test; requests are counted from the sandbox's log.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import dlt
import duckdb
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from octopush_dlt import octopush_source
from octopush_dlt.cli import _parser, _source_options
from octopush_dlt.receipts import ReceiptPolicy, ReceiptTracker
from octopush_dlt.runner import run_load
from octopush_dlt.settings import DEFAULT_LAG_SECONDS
from octopush_provider.conversations import to_utc
from octopush_provider.exceptions import OctopushConfigError, OctopushRequestError
from octopush_provider.messages import MessageParent
from octopush_provider.sandbox import ConversationStore, SandboxServer
from tests.e2e.test_cli import PIPELINE, _load, _sandbox_environment
from tests.helpers import (
    RECEIPTS_WINDOW,
    expected_messages,
    loaded_messages,
    message_requests,
    requested_conversations,
    root_cause,
    sandbox_source,
    waiting,
)

HOURS = 3_600


def statuses(store: ConversationStore) -> dict[str, str | None]:
    return {mid: message[1] for mid, message in expected_messages(store).items()}


def receipt_figures(pipeline: dlt.Pipeline) -> dict[str, int]:
    """The last run's receipt figures, as the source left them in the pipeline state."""
    state = pipeline.state["sources"]["octopush"]["resources"]["messages"]
    figures: dict[str, int] = state["last_read"]["receipts"]
    return figures


def plain_run(pipeline: dlt.Pipeline, source: Any) -> None:
    pipeline.run(source)


def runner(pipeline: dlt.Pipeline, source: Any) -> None:
    run_load(pipeline, source)


def sent_and_loaded(
    sandbox: SandboxServer, load: Callable[..., Any], pipeline: dlt.Pipeline, **options: Any
) -> None:
    """A first load, then a burst of traffic (new outbound messages, most still ``sent``) and,
    an hour later, one more conversation: the burst is then outside the lag. Loaded."""
    load(pipeline, sandbox_source(sandbox, **options))
    sandbox.store.add_new(30)
    sandbox.store.bump(30)
    sandbox.store.advance(HOURS)
    sandbox.store.add_new(1)
    load(pipeline, sandbox_source(sandbox, **options))


@pytest.mark.parametrize("load", [runner, plain_run], ids=["run_load", "pipeline.run"])
def test_receipts_outside_the_lag_land_with_one_request_per_waiting_conversation(
    make_sandbox, make_pipeline, load
):
    sandbox = make_sandbox(conversations=1200)
    pipeline = make_pipeline()
    sent_and_loaded(sandbox, load, pipeline)
    waits = waiting(sandbox.store)
    before = statuses(sandbox.store)
    cursor = sandbox.store.newest

    sandbox.store.advance(12 * HOURS)  # every receipt that comes arrives; no conversation moves
    changed = sandbox.store.add_new(1)
    aged = {cid for cid, at in waits.items() if sandbox.store.newest - at > RECEIPTS_WINDOW}
    waits = {cid: at for cid, at in waits.items() if cid not in aged}
    sandbox.clear_requests()
    load(pipeline, sandbox_source(sandbox))

    lag = timedelta(seconds=DEFAULT_LAG_SECONDS)
    rows = sandbox.store.snapshot()
    last = {row["conversation_id"]: to_utc(row["last_message_at"]) for row in rows}
    outside = [cid for cid in waits if last[cid] < cursor - lag]
    assert len(outside) == len(waits) - 1  # all but the last conversation
    after = statuses(sandbox.store)
    moved = sum(before[mid] != after[mid] for mid in before)
    assert moved >= 10 and len(outside) >= 10
    assert loaded_messages(pipeline) == expected_messages(sandbox.store)
    assert Counter(requested_conversations(sandbox)) == Counter([*waits, *changed])
    figures = receipt_figures(pipeline)
    assert (figures["requests"], figures["statuses_moved"]) == (len(outside), moved)
    assert figures["aged_out"] == len(aged)


def test_the_summary_says_what_moved_what_still_waits_and_what_aged_out(
    make_sandbox, make_pipeline, caplog
):
    sandbox = make_sandbox(conversations=800)
    pipeline = make_pipeline()
    sent_and_loaded(sandbox, runner, pipeline)
    sandbox.store.advance(6 * HOURS)
    sandbox.store.add_new(1)

    with caplog.at_level(logging.INFO, logger="octopush_dlt.receipts"):
        summary = run_load(pipeline, sandbox_source(sandbox))

    assert summary.messages is not None
    receipts = summary.messages.receipts
    still = waiting(sandbox.store)
    assert receipts.waiting_conversations == len(still)
    assert receipts.statuses_moved > 0 and receipts.aged_out == 0
    line = (
        f"  receipts: {receipts.statuses_moved} statuses moved; {receipts.waiting_messages} "
        f"messages of {len(still)} conversations still wait; 0 aged out; "
        f"{receipts.requests} requests to read them again"
    )
    assert line in summary.lines()
    assert summary.as_dict()["messages"]["receipts"]["statuses_moved"] == receipts.statuses_moved
    assert f"{receipts.statuses_moved} statuses moved" in caplog.text


def test_a_run_with_nothing_waiting_sends_nothing_extra(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=800)
    pipeline = make_pipeline()
    everything_final = {"lag_seconds": 0, "final_statuses": ["delivered", "not_delivered", "sent"]}
    run_load(pipeline, sandbox_source(sandbox, **everything_final))
    sandbox.clear_requests()

    summary = run_load(pipeline, sandbox_source(sandbox, **everything_final))

    assert message_requests(sandbox) == []
    assert summary.messages is not None and summary.messages.receipts.waiting_conversations == 0


def test_a_run_with_nothing_new_reads_exactly_the_waiting_conversations(
    make_sandbox, make_pipeline
):
    sandbox = make_sandbox(conversations=1500)
    pipeline = make_pipeline()
    run_load(pipeline, sandbox_source(sandbox, lag_seconds=0))
    sandbox.clear_requests()

    run_load(pipeline, sandbox_source(sandbox, lag_seconds=0))

    waits = waiting(sandbox.store)
    assert waits and Counter(requested_conversations(sandbox)) == Counter(list(waits))


def test_conversations_older_than_the_window_age_out(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=800)
    pipeline = make_pipeline()
    sent_and_loaded(sandbox, runner, pipeline)
    tracked = waiting(sandbox.store)
    last = sandbox.store.snapshot()[0]["conversation_id"]  # inside the lag: read again
    sandbox.store.advance(4 * 86_400)
    changed = sandbox.store.add_new(1)
    sandbox.clear_requests()

    summary = run_load(pipeline, sandbox_source(sandbox))

    assert sorted(requested_conversations(sandbox)) == sorted([last, *changed])
    # The last one, read by the lag, ages out only if it still waits (settled, it just leaves).
    settled = not waiting(sandbox.store, window=timedelta(days=365)).get(last)
    assert summary.messages is not None
    assert summary.messages.receipts.aged_out == len(tracked) - settled > 0


def test_past_the_limit_the_oldest_are_dropped_with_a_warning(make_sandbox, make_pipeline, caplog):
    sandbox = make_sandbox(conversations=800)
    pipeline = make_pipeline()
    limited = {"receipts_max_conversations": 5, "lag_seconds": 0}
    with caplog.at_level(logging.WARNING, logger="octopush_dlt.receipts"):
        sent_and_loaded(sandbox, runner, pipeline, **limited)
    over = receipt_figures(pipeline)["over_limit"]
    waits = waiting(sandbox.store)
    sandbox.store.advance(6 * HOURS)
    changed = sandbox.store.add_new(1)
    sandbox.clear_requests()

    third = run_load(pipeline, sandbox_source(sandbox, **limited))

    assert third.messages is not None
    assert over == len(waits) - 5
    assert f"{len(waits)} conversations wait for delivery receipts" in caplog.text
    candidates = waits | {changed[0]: sandbox.store.newest}
    newest_five = sorted(candidates, key=candidates.__getitem__)[-5:]
    assert sorted(requested_conversations(sandbox)) == sorted(newest_five)
    assert third.messages.receipts.over_limit == 1  # the new one pushed the oldest out


def test_a_killed_run_keeps_the_waiting_set_for_the_next(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=800)
    pipeline = make_pipeline()
    sent_and_loaded(sandbox, runner, pipeline)
    waits = waiting(sandbox.store)
    sandbox.store.advance(6 * HOURS)
    changed = sandbox.store.add_new(1)
    sandbox.clear_requests()
    # The list answers; then the API refuses every messages request: the run fails.
    sandbox.before_request(2, lambda store: sandbox.add_fault("400", times=10**6))
    with pytest.raises(PipelineStepFailed) as raised:
        run_load(pipeline, sandbox_source(sandbox))
    assert isinstance(root_cause(raised.value), OctopushRequestError)
    sandbox.clear_faults()
    sandbox.clear_requests()

    run_load(pipeline, sandbox_source(sandbox))

    assert Counter(requested_conversations(sandbox)) == Counter([*waits, *changed])
    assert loaded_messages(pipeline) == expected_messages(sandbox.store)


def test_a_full_refresh_starts_the_waiting_set_afresh(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=800)
    pipeline = make_pipeline()
    sent_and_loaded(sandbox, runner, pipeline)
    tracked = waiting(sandbox.store)
    since = sandbox.store.newest - timedelta(seconds=5)
    kept = {
        r["conversation_id"]
        for r in sandbox.store.snapshot()
        if to_utc(r["last_message_at"]) >= since
    }
    assert set(tracked) - kept  # waiting conversations the refreshed load does not read
    sandbox.clear_requests()

    summary = run_load(
        pipeline, sandbox_source(sandbox, start_date=since.isoformat()), full_refresh=True
    )

    assert sorted(requested_conversations(sandbox)) == sorted(kept)
    assert summary.messages is not None and summary.messages.receipts.requests == 0


def test_a_window_of_zero_waits_for_nothing(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=800)
    pipeline = make_pipeline()
    sent_and_loaded(sandbox, runner, pipeline)
    sandbox.clear_requests()

    summary = run_load(pipeline, sandbox_source(sandbox, lag_seconds=0, receipts_window_seconds=0))

    assert message_requests(sandbox) == []
    assert summary.messages is not None and summary.messages.receipts.waiting_conversations == 0


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("receipts_window_seconds", -1),
        ("receipts_window_seconds", "3 days"),
        ("receipts_max_conversations", 0),
        ("receipts_max_conversations", 2.5),
        ("final_statuses", []),
        ("final_statuses", ["delivered", ""]),
    ],
)
def test_bad_receipt_settings_are_named_in_one_line(option, value):
    with pytest.raises(OctopushConfigError, match=option):
        octopush_source(api_login="x", api_key="y", **{option: value})


# Fast tier: the tracker on its own, with clocks these tests set.
_NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def _parent(cid: str, at: datetime) -> MessageParent:
    return MessageParent(
        conversation_id=cid, phone_number=None, number_of_messages=1, last_message_at=at
    )


def _message(mid: str, status: str | None, direction: str = "outbound") -> dict[str, Any]:
    return {"message_id": mid, "direction": direction, "delivery_status": status}


def test_final_statuses_compare_ignoring_case_and_inbound_messages_never_wait():
    policy = ReceiptPolicy()

    found = policy.waiting(
        [
            _message("a", "DELIVERED"),
            _message("b", "Not_Delivered"),
            _message("c", "sent"),
            _message("d", None),
            _message("e", "read"),
            _message("f", None, direction="inbound"),
            _message("g", "sent", direction="INBOUND"),
        ]
    )

    assert found == {"c": "sent", "d": None, "e": "read"}


def test_on_a_quiet_account_a_conversation_ages_out_by_the_wall_clock():
    state: dict[str, Any] = {}
    policy = ReceiptPolicy(window=timedelta(days=3))
    ReceiptTracker(state, policy, now=_NOW).observe(_parent("c1", _NOW), [_message("m", "sent")])

    two_days = ReceiptTracker(state, policy, now=_NOW + timedelta(days=2))
    assert [parent.conversation_id for parent in two_days.due(read=[])] == ["c1"]
    four_days = ReceiptTracker(state, policy, now=_NOW + timedelta(days=4))
    assert four_days.due(read=[]) == []
    assert four_days.finish().aged_out == 1


def test_a_future_last_message_does_not_age_the_others_out():
    state: dict[str, Any] = {}
    policy = ReceiptPolicy(window=timedelta(days=3), clock_skew=timedelta(minutes=10))
    tracker = ReceiptTracker(state, policy, now=_NOW)
    tracker.observe(_parent("c1", _NOW - timedelta(hours=1)), [_message("m1", "sent")])
    tracker.observe(_parent("c2", _NOW + timedelta(days=30)), [_message("m2", "delivered")])

    assert [parent.conversation_id for parent in tracker.due(read=[])] == ["c1"]


def test_the_command_line_lands_receipts_and_prints_them(tmp_path, make_sandbox):
    sandbox = make_sandbox(conversations=300)
    env = _sandbox_environment(tmp_path, sandbox)
    store = sandbox.store

    def load() -> str:
        result = _load(tmp_path, env, "--quiet")
        assert result.returncode == 0, result.stderr
        return result.stdout

    load()
    store.add_new(20)
    store.advance(HOURS)
    store.add_new(1)
    load()
    waits = waiting(store)
    store.advance(12 * HOURS)
    changed = store.add_new(1)
    sandbox.clear_requests()

    printed = load()

    with duckdb.connect(str(tmp_path / f"{PIPELINE}.duckdb"), read_only=True) as db:
        landed = dict(
            db.execute("SELECT message_id, delivery_status FROM octopush.messages").fetchall()
        )
    assert landed == statuses(store)
    assert Counter(requested_conversations(sandbox)) == Counter([*waits, *changed])
    assert re.search(r"receipts: [1-9]\d* statuses moved", printed), printed


def test_an_old_message_without_its_receipt_does_not_bring_its_conversation_back():
    state: dict[str, Any] = {}
    tracker = ReceiptTracker(state, ReceiptPolicy(window=timedelta(days=3)), now=_NOW)
    never = {**_message("m1", "sent"), "created_at": _NOW - timedelta(days=30)}
    answered = {**_message("m2", "delivered"), "created_at": _NOW}
    fresh = {**_message("m3", "sent"), "created_at": _NOW}

    tracker.observe(_parent("c1", _NOW), [never, answered])
    tracker.observe(_parent("c2", _NOW), [never | {"message_id": "m0"}, fresh])

    assert [parent.conversation_id for parent in tracker.due(read=[])] == ["c2"]
    assert state["receipts"]["tracked"]["c2"]["waiting"] == {"m3": "sent"}


def test_the_command_line_passes_the_receipts_window_on():
    args = _parser().parse_args(["--receipts-window-seconds", "0"])

    assert _source_options(args)["receipts_window_seconds"] == 0
