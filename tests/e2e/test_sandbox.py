"""The sandbox behaves like the Octopush reference page says, and misbehaves exactly on cue."""

from __future__ import annotations

import hashlib
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pendulum
import pytest
import requests

from octopush_provider.sandbox import (
    DEFAULT_API_KEY,
    DEFAULT_API_LOGIN,
    READ_ONLY_LOGIN,
    ConversationStore,
    Fault,
    SandboxServer,
)
from octopush_provider.sandbox.server import interpret_int

AUTH = {"api-login": DEFAULT_API_LOGIN, "api-key": DEFAULT_API_KEY}
MakeSandbox = Callable[..., SandboxServer]


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def get(
    http: requests.Session, sandbox: SandboxServer, headers: dict[str, str] = AUTH, **params: Any
) -> requests.Response:
    return http.get(sandbox.url, params=params, headers=headers, timeout=5)


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["conversation_id"] for row in rows]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- lenient parameters -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, 100),
        ("2", 2),
        (" 3 ", 3),
        ("2.0", 2),
        ("2.9", 2),
        ("1e2", 100),
        ("2abc", 2),
        ("a1b2", 12),
        ("-2", 2),
        ("-2.5", 2),
        ("0", 100),
        ("0.4", 100),
        ("", 100),
        ("abc", 100),
        ("nan", 100),
        ("inf", 100),
        ("777", 777),
    ],
)
def test_interpret_int_casts_strips_or_falls_back_to_default(
    raw: str | None, expected: int
) -> None:
    assert interpret_int(raw, default=100) == expected


def test_interpret_int_survives_numbers_too_long_for_int() -> None:
    assert interpret_int("9" * 5000 + "x", default=1) == 1


def test_page_given_as_text_float_or_with_junk_is_the_same_page(
    http: requests.Session, sandbox: SandboxServer
) -> None:
    expected = sandbox.store.snapshot()[20:40]
    for raw in ("2", "2.0", "2abc", " 2 ", "-2"):
        assert get(http, sandbox, page=raw, per_page="20").json() == expected
    assert [r.page for r in sandbox.requests] == [2] * 5


def test_unusable_parameters_fall_back_to_page_1_of_100(
    http: requests.Session, sandbox: SandboxServer
) -> None:
    default = get(http, sandbox).json()
    assert len(default) == 100
    assert default == sandbox.store.snapshot()[:100]
    assert get(http, sandbox, page="abc", per_page="xyz", sort="asc").json() == default
    assert get(http, sandbox, page="0", per_page="0").json() == default
    assert sandbox.requests[-1].query == {"page": "0", "per_page": "0"}


def test_per_page_above_the_maximum_is_capped(
    http: requests.Session, make_sandbox: MakeSandbox
) -> None:
    sandbox = make_sandbox(max_per_page=50)
    assert len(get(http, sandbox, per_page=500).json()) == 50
    assert get(http, sandbox, page=2, per_page=500).json() == sandbox.store.snapshot()[50:100]
    assert sandbox.requests[-1].per_page == 50


def test_paging_returns_every_conversation_once_newest_first(
    http: requests.Session, sandbox: SandboxServer
) -> None:
    rows = [row for page in range(1, 4) for row in get(http, sandbox, page=page).json()]
    assert rows == sandbox.store.snapshot()
    times = [instant(row["last_message_at"]) for row in rows]
    assert times == sorted(times, reverse=True)
    assert get(http, sandbox, page=4).json() == []


def test_success_is_a_json_array_over_keep_alive_http_1_1(
    http: requests.Session, sandbox: SandboxServer
) -> None:
    response = get(http, sandbox)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert response.raw.version == 11
    started = time.perf_counter()
    for _ in range(30):
        get(http, sandbox, per_page=10)
    # Without TCP_NODELAY each keep-alive request stalls ~40 ms on a delayed ACK.
    assert time.perf_counter() - started < 0.6


# --- data ---------------------------------------------------------------------------------


def test_generated_conversations_look_like_the_reference_example() -> None:
    rows = ConversationStore.generate(400).snapshot()
    assert len({row["conversation_id"] for row in rows}) == 400
    assert len({instant(row["last_message_at"]) for row in rows}) == 400
    assert 120 < sum("agent_assigned_to" in row for row in rows) < 280
    for row in rows:
        assert set(row) - {"agent_assigned_to"} == {
            "conversation_id", "last_user_channel", "recipient_details", "from",
            "first_message_at", "last_message_at", "last_message", "purpose", "color",
            "number_of_messages",
        }  # fmt: skip
        assert re.fullmatch(r"\+33[67]\d{8}", row["recipient_details"]["phone_number"])
        assert row["recipient_details"]["name"]
        if row["last_user_channel"] == "sms":
            assert re.fullmatch(r"\d{5}", row["from"])
        else:
            assert row["last_user_channel"] == "rcs"
            assert row["from"].endswith("@rcs.goog")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", row["last_message_at"])
        assert instant(row["first_message_at"]) <= instant(row["last_message_at"])
        assert 0 <= row["color"] <= 5
        assert row["number_of_messages"] >= 1


def test_same_seed_same_data_other_seed_other_data() -> None:
    assert ConversationStore.generate(50).snapshot() == ConversationStore.generate(50).snapshot()
    assert (
        ConversationStore.generate(50, seed=8).snapshot()
        != ConversationStore.generate(50).snapshot()
    )


def test_a_seed_keeps_producing_the_same_data_through_mutations_and_pages() -> None:
    """Pinned digests: a faster store must serve exactly what the seed produced before."""
    seen: dict[str, Any] = {}
    for offsets in ("paris", "mixed"):
        store = ConversationStore.generate(3000, seed=11, offsets=offsets)
        seen[f"{offsets} generated"] = digest(store.snapshot())
        seen[f"{offsets} new"] = store.add_new(5)
        seen[f"{offsets} bumped"] = store.bump(40)
        store.bump_ids(seen[f"{offsets} new"][:2])
        seen[f"{offsets} after"] = digest(store.snapshot())
        store.shuffled = True
        seen[f"{offsets} shuffled"] = digest([store.page(p, 100) for p in (1, 7, 31)])
        store.shuffled = False
        seen[f"{offsets} pages"] = digest([store.page(p, 100) for p in (1, 7, 30, 31)])
    assert digest(seen) == "e706fd2a108b0c7d"


def digest(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value)).hexdigest()[:16]


def test_paris_offsets_follow_daylight_saving_time() -> None:
    rows = ConversationStore.generate(300).snapshot()
    offsets = {row["last_message_at"][-6:] for row in rows}
    assert offsets == {"+01:00", "+02:00"}
    for row in rows:
        moment = instant(row["last_message_at"])
        paris = pendulum.instance(moment).in_timezone("Europe/Paris")
        assert moment.utcoffset() == paris.utcoffset()


def test_mixed_offsets_write_the_same_instants_differently() -> None:
    paris = ConversationStore.generate(300).snapshot()
    mixed = ConversationStore.generate(300, offsets="mixed").snapshot()
    assert ids(paris) == ids(mixed)
    for field in ("first_message_at", "last_message_at"):
        assert [instant(r[field]) for r in paris] == [instant(r[field]) for r in mixed]
    suffixes = {row["last_message_at"][-6:] for row in mixed}
    assert {"+01:00", "+02:00", "-04:00", "-05:00"} <= suffixes
    assert any(row["last_message_at"].endswith("Z") for row in mixed)


def test_shuffled_store_is_not_newest_first(
    http: requests.Session, make_sandbox: MakeSandbox
) -> None:
    sandbox = make_sandbox(shuffled=True)
    served = [row for page in (1, 2, 3) for row in get(http, sandbox, page=page).json()]
    snapshot = sandbox.store.snapshot()
    assert served != snapshot
    assert sorted(ids(served)) == sorted(ids(snapshot))
    assert ConversationStore.generate(2, shuffled=True).page(1, 2) != ConversationStore.generate(
        2
    ).page(1, 2)


def test_add_new_puts_newer_conversations_on_top() -> None:
    store = ConversationStore.generate(100, offsets="mixed")
    newest = instant(store.snapshot()[0]["last_message_at"])
    added = store.add_new(2)
    assert ids(store.page(1, 2)) == added[::-1]
    assert instant(store.page(1, 2)[1]["last_message_at"]) > newest
    assert len(store) == 102


def test_bump_moves_older_conversations_to_the_top_with_one_more_message() -> None:
    store = ConversationStore.generate(100)
    before = store.snapshot()
    bumped = store.bump(3)
    assert set(bumped) <= set(ids(before[50:])), "bumps come from the older half"
    top = store.page(1, 3)
    assert ids(top) == bumped[::-1]
    counts = {row["conversation_id"]: row["number_of_messages"] for row in before}
    assert [row["number_of_messages"] for row in top] == [counts[c] + 1 for c in ids(top)]
    with pytest.raises(KeyError):
        store.bump_ids(["nope"])


# --- auth and errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"api-login": DEFAULT_API_LOGIN},
        {"api-key": DEFAULT_API_KEY},
        {"api-login": DEFAULT_API_LOGIN, "api-key": "wrong"},
        {"api-login": "someone@example.com", "api-key": DEFAULT_API_KEY},
        {"api-login": READ_ONLY_LOGIN, "api-key": "wrong"},
    ],
)
def test_missing_or_wrong_credentials_get_401(
    http: requests.Session, sandbox: SandboxServer, headers: dict[str, str]
) -> None:
    sandbox.add_fault("500")
    response = get(http, sandbox, headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == 1001
    assert get(http, sandbox).status_code == 500, "the fault waits for an authenticated request"


def test_read_only_login_gets_403(http: requests.Session, sandbox: SandboxServer) -> None:
    response = get(
        http, sandbox, headers={"api-login": READ_ONLY_LOGIN, "api-key": DEFAULT_API_KEY}
    )
    assert response.status_code == 403
    assert set(response.json()) == {"code", "message"}


def test_unknown_path_gets_404(http: requests.Session, sandbox: SandboxServer) -> None:
    response = http.get(sandbox.base_url + "/conversations", headers=AUTH, timeout=5)
    assert response.status_code == 404
    assert set(response.json()) == {"code", "message"}


def test_request_log_keeps_the_login_but_never_the_key(
    http: requests.Session, sandbox: SandboxServer
) -> None:
    get(http, sandbox, page="2x", per_page="7", extra="1")
    (record,) = sandbox.requests
    assert record.path.startswith("/v1/public/conversations/list?")
    assert record.query == {"page": "2x", "per_page": "7", "extra": "1"}
    assert (record.page, record.per_page, record.status, record.fault) == (2, 7, 200, None)
    assert record.login == DEFAULT_API_LOGIN
    assert DEFAULT_API_KEY not in repr(record)
    sandbox.clear_requests()
    assert sandbox.requests == []


# --- past the end -------------------------------------------------------------------------


def test_past_the_end_answers_empty_array_by_default(
    http: requests.Session, make_sandbox: MakeSandbox
) -> None:
    assert get(http, make_sandbox(), page=9).json() == []
    assert get(http, make_sandbox(conversations=0)).json() == []


def test_past_the_end_can_answer_404(http: requests.Session, make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(past_end="404")
    assert len(get(http, sandbox, page=3).json()) == 50
    response = get(http, sandbox, page=4)
    assert response.status_code == 404
    assert response.json()["message"] == "No conversation found"
    assert get(http, make_sandbox(conversations=0, past_end="404")).status_code == 404


# --- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["400", "429", "500", "502", "503"])
def test_status_faults_answer_a_json_error_then_recover(
    http: requests.Session, sandbox: SandboxServer, kind: str
) -> None:
    sandbox.add_fault(kind)
    response = get(http, sandbox)
    assert response.status_code == int(kind)
    assert set(response.json()) == {"code", "message"}
    assert "Retry-After" not in response.headers
    assert get(http, sandbox).status_code == 200
    assert [(r.status, r.fault) for r in sandbox.requests] == [(int(kind), kind), (200, None)]


@pytest.mark.parametrize("retry_after", ["1", "Wed, 21 Oct 2026 07:28:00 GMT"])
def test_429_can_carry_retry_after(
    http: requests.Session, sandbox: SandboxServer, retry_after: str
) -> None:
    sandbox.add_fault("429", retry_after=retry_after)
    response = get(http, sandbox)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == retry_after


def test_fault_for_a_page_waits_for_that_page_and_repeats_times(
    http: requests.Session, sandbox: SandboxServer
) -> None:
    sandbox.add_fault("503", page=2, times=2)
    statuses = [get(http, sandbox, page=page).status_code for page in (1, 2, 3, 2, 2)]
    assert statuses == [200, 503, 200, 503, 200]


@pytest.mark.parametrize(
    ("kind", "status"), [("html", 200), ("html-502", 502)], ids=["html", "html-502"]
)
def test_html_faults_answer_an_html_page(
    http: requests.Session, sandbox: SandboxServer, kind: str, status: int
) -> None:
    sandbox.add_fault(kind)
    response = get(http, sandbox)
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.text.lstrip().lower().startswith(("<!doctype html", "<html"))


def test_error_object_fault_answers_200_with_an_object(
    http: requests.Session, sandbox: SandboxServer
) -> None:
    sandbox.add_fault("error-object")
    response = get(http, sandbox)
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, dict)
    assert 200 <= body["code"] < 300


def test_redirect_fault_points_at_a_url_carrying_the_key(
    http: requests.Session, sandbox: SandboxServer
) -> None:
    sandbox.add_fault("redirect")
    response = http.get(sandbox.url, headers=AUTH, timeout=5, allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"] == f"{sandbox.url}?page=1&api-key={DEFAULT_API_KEY}"


def test_echo_key_shows_the_requests_key_in_error_bodies(
    http: requests.Session, make_sandbox: MakeSandbox
) -> None:
    sandbox = make_sandbox(echo_key=True)
    response = get(http, sandbox, headers={**AUTH, "api-key": "wrong key/+"})
    assert response.status_code == 401
    assert response.json()["request"]["api-key"] == "wrong key/+"
    assert response.json()["request"]["url"].endswith("&api-key=wrong+key%2F%2B")
    sandbox.echo_key = False
    assert "request" not in get(http, sandbox, headers={**AUTH, "api-key": "x"}).json()


def test_page_sizes_serve_chosen_pages_short_and_skip_nothing(
    http: requests.Session, make_sandbox: MakeSandbox
) -> None:
    sandbox = make_sandbox(conversations=30, page_sizes={2: 3, 3: 1})
    pages = [get(http, sandbox, page=page, per_page=10).json() for page in (1, 2, 3, 4, 5)]
    assert [len(page) for page in pages] == [10, 3, 1, 10, 6]
    assert [row for page in pages for row in ids(page)] == ids(sandbox.store.snapshot())


def test_page_cycle_serves_the_first_pages_over_and_over(
    http: requests.Session, make_sandbox: MakeSandbox
) -> None:
    sandbox = make_sandbox(conversations=30, page_cycle=2)
    pages = [ids(get(http, sandbox, page=page, per_page=5).json()) for page in (1, 2, 3, 4, 5)]
    assert pages[0] == pages[2] == pages[4] != pages[1] == pages[3]


def test_truncated_fault_sends_half_the_promised_body(
    http: requests.Session, sandbox: SandboxServer
) -> None:
    sandbox.add_fault("truncated")
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="IncompleteRead"):
        get(http, sandbox)
    assert [(r.status, r.fault) for r in sandbox.requests] == [(None, "truncated")]
    assert get(http, sandbox).status_code == 200


def test_reset_fault_resets_the_connection(sandbox: SandboxServer) -> None:
    sandbox.add_fault("reset")
    host, port = sandbox.base_url.removeprefix("http://").split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"GET /v1/public/conversations/list HTTP/1.1\r\nHost: sandbox\r\n"
            + b"".join(f"{k}: {v}\r\n".encode() for k, v in AUTH.items())
            + b"\r\n"
        )
        with pytest.raises(ConnectionResetError):
            sock.recv(1024)
    assert [(r.status, r.fault) for r in sandbox.requests] == [(None, "reset")]


def test_slow_fault_delays_the_answer(http: requests.Session, sandbox: SandboxServer) -> None:
    sandbox.add_fault("slow", delay=0.2, times=2)
    with pytest.raises(requests.exceptions.ReadTimeout):
        http.get(sandbox.url, headers=AUTH, timeout=0.05)
    started = time.perf_counter()
    assert get(http, sandbox).status_code == 200
    assert time.perf_counter() - started >= 0.2
    assert (sandbox.requests[-1].status, sandbox.requests[-1].fault) == (200, "slow")


def test_random_faults_follow_rate_and_kinds(
    http: requests.Session, make_sandbox: MakeSandbox
) -> None:
    sandbox = make_sandbox(fault_rate=1.0, fault_kinds=("500", "503"))
    assert {get(http, sandbox).status_code for _ in range(20)} == {500, 503}
    sandbox.fault_rate = 0.0
    assert get(http, sandbox).status_code == 200


def test_unknown_fault_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="fault kind"):
        Fault("teapot")
    with pytest.raises(ValueError, match="fault kinds"):
        SandboxServer(ConversationStore(), fault_kinds=("teapot",))


# --- data changing while a client pages ---------------------------------------------------


def test_new_conversations_before_a_request_shift_rows_down_a_page(
    http: requests.Session, sandbox: SandboxServer
) -> None:
    sandbox.before_request(2, lambda store: store.add_new(3))
    first = get(http, sandbox, page=1).json()
    second = get(http, sandbox, page=2).json()
    assert ids(second[:3]) == ids(first[-3:]), "the last rows of page 1 are served again"


def test_bumped_conversation_jumps_from_far_down_to_the_top(
    http: requests.Session, sandbox: SandboxServer
) -> None:
    far_down = sandbox.store.snapshot()[-1]["conversation_id"]
    sandbox.before_request(2, lambda store: store.bump_ids([far_down]))
    get(http, sandbox, page=1)
    top = get(http, sandbox, page=1).json()[0]
    assert top["conversation_id"] == far_down
    sandbox.clear_requests()
    sandbox.before_request(1, lambda store: store.add_new(1))
    assert get(http, sandbox).json()[0]["conversation_id"] != far_down


def test_churn_changes_the_top_before_every_request(
    http: requests.Session, make_sandbox: MakeSandbox
) -> None:
    sandbox = make_sandbox(churn_new=2, churn_bump=1)
    first = get(http, sandbox, per_page=10).json()
    second = get(http, sandbox, per_page=10).json()
    assert ids(second[3:10]) == ids(first[:7])
    assert len(sandbox.store) == 254


# --- lifecycle and CLI --------------------------------------------------------------------


def test_stop_drops_keep_alive_connections(http: requests.Session, sandbox: SandboxServer) -> None:
    url = sandbox.url
    assert get(http, sandbox).status_code == 200
    sandbox.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        http.get(url, headers=AUTH, timeout=2)
    with pytest.raises(RuntimeError, match="not running"):
        _ = sandbox.url


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_serves_until_signalled(signum: signal.Signals) -> None:
    root = Path(__file__).resolve().parents[2]
    command = [
        sys.executable,
        "-m",
        "octopush_provider.sandbox",
        "--port",
        "0",
        "--conversations",
        "30",
    ]
    with subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"(http://\S+/v1/public)", line)
        assert match, line
        assert DEFAULT_API_LOGIN in line and DEFAULT_API_KEY in line
        response = requests.get(f"{match[1]}/conversations/list", headers=AUTH, timeout=5)
        assert len(response.json()) == 30
        process.send_signal(signum)
        assert process.wait(timeout=10) == 0


def test_cli_serves_short_pages_in_a_loop_and_echoes_the_key() -> None:
    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "octopush_provider.sandbox", "--port", "0"]
    command += ["--conversations", "30", "--page-sizes", "1:4,2:6", "--page-cycle", "2"]
    command += ["--echo-key"]
    with subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        match = re.search(r"(http://\S+/v1/public)", process.stdout.readline())
        assert match
        url = f"{match[1]}/conversations/list"
        sizes = [
            len(requests.get(url, params={"page": n}, headers=AUTH, timeout=5).json())
            for n in (1, 2, 3)
        ]
        wrong = requests.get(url, headers={**AUTH, "api-key": "nope"}, timeout=5)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    assert sizes == [4, 6, 4]
    assert wrong.json()["request"]["api-key"] == "nope"


def _first_statuses(store: ConversationStore, ids: list[str]) -> list[str | None]:
    return [store.messages(cid)[0]["delivery_status"] for cid in ids]  # type: ignore[index]


def test_receipts_arrive_as_the_clock_moves_the_same_way_for_a_seed() -> None:
    stores = [ConversationStore.generate(10, seed=3) for _ in range(2)]
    sent = [store.add_new(400) for store in stores]  # a first message is always outbound
    seen: list[list[list[str | None]]] = [[], []]
    # The 400 are sent a second apart after the clock: a minute after the last, then half a day.
    for seconds in (0, 400 + 60, 12 * 3600):
        for store, ids, statuses in zip(stores, sent, seen, strict=True):
            store.advance(seconds)
            statuses.append(_first_statuses(store, ids))

    assert seen[0] == seen[1]
    at_once, after_a_minute, after_half_a_day = (Counter(statuses) for statuses in seen[0])
    assert at_once == {"sent": 400}
    # Most receipts within a minute, the rest within hours, a fifth never: "sent" for good.
    assert 0.4 < 1 - after_a_minute["sent"] / 400 < 0.7
    assert 0.12 < after_half_a_day["sent"] / 400 < 0.3
    assert set(after_half_a_day) == {"sent", "delivered", "not_delivered"}


def test_the_clock_only_moves_forward_and_new_messages_follow_it() -> None:
    store = ConversationStore.generate(10)
    with pytest.raises(ValueError, match="forward"):
        store.advance(-1)

    later = store.advance(86_400)
    store.add_new(1)

    assert store.newest > later
