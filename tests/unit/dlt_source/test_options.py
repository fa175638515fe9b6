"""``octopush_dlt.options``: the source's settings, checked in one place, before any I/O."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from octopush_dlt.errors import OctopushPrivacyError
from octopush_dlt.options import check_options, source_client
from octopush_provider.client import OctopushClient
from octopush_provider.exceptions import OctopushConfigError

DEFAULTS: dict[str, Any] = {
    "resources": ("conversations", "messages"),
    "start_date": None,
    "lag_seconds": 300.0,
    "clock_skew_seconds": 600.0,
    "max_pages": None,
    "slice_conversations": None,
    "hash_columns": None,
    "drop_columns": None,
    "hash_secret": None,
    "detect_deletes": False,
    "deletes_mode": "soft",
    "deletes_min_share": 0.5,
    "receipts_window_seconds": 259_200.0,
    "receipts_max_conversations": 2_000,
    "final_statuses": ("delivered",),
}
CREDENTIALS: dict[str, Any] = {
    "api_login": "login",
    "api_key": "key",
    "base_url": "https://api.example.com/v1",
    "conversations_path": "conversations/list",
    "messages_path": "conversations/messages/list",
    "per_page": 100,
    "concurrency": 12,
    "allow_insecure_http": False,
}


def test_the_defaults_pass_and_load_both_tables_from_the_start():
    options = check_options(**DEFAULTS)

    assert (options.resources, options.with_messages, options.start) == (
        ("conversations", "messages"),
        True,
        None,
    )
    assert (options.max_pages, options.slice_conversations, options.deletions) == (None, None, None)


def test_conversations_alone_and_a_start_date_in_any_offset():
    options = check_options(
        **DEFAULTS | {"resources": "conversations", "start_date": "2026-11-01T10:00:00+02:00"}
    )

    assert (options.resources, options.with_messages) == (("conversations",), False)
    assert options.start == datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        (
            "resources",
            ["tickets"],
            "resources must be some of conversations, messages; got ['tickets']",
        ),
        ("resources", [], "resources must be some of conversations, messages; got []"),
        (
            "resources",
            ["messages"],
            "resources: messages are read for the conversations each run reads, so "
            "'conversations' must be loaded with them; got ['messages']",
        ),
        ("lag_seconds", -1.0, "lag_seconds must be >= 0, got -1.0"),
        ("clock_skew_seconds", -5, "clock_skew_seconds must be >= 0, got -5"),
        ("max_pages", 0, "max_pages must be a whole number >= 1, got 0"),
        ("max_pages", True, "max_pages must be a whole number >= 1, got True"),
        ("max_pages", 2.5, "max_pages must be a whole number >= 1, got 2.5"),
        ("slice_conversations", 0, "slice_conversations must be a positive integer, got 0"),
        ("start_date", "2026", "start_date must be an ISO 8601 date and time: '2026' is not"),
    ],
)
def test_a_wrong_setting_fails_in_one_line_naming_it(setting, value, message):
    with pytest.raises(OctopushConfigError) as refused:
        check_options(**DEFAULTS | {setting: value})

    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)


def test_deletion_settings_are_checked_only_when_detection_is_on():
    assert check_options(**DEFAULTS | {"deletes_mode": "both"}).deletions is None
    with pytest.raises(OctopushConfigError) as refused:
        check_options(**DEFAULTS | {"detect_deletes": True, "deletes_mode": "both"})

    assert str(refused.value) == "deletes_mode must be one of soft, hard, got 'both'"


def test_hashing_without_a_secret_is_a_privacy_error_saying_where_to_set_it():
    with pytest.raises(OctopushPrivacyError) as refused:
        check_options(**DEFAULTS | {"hash_columns": ["contact_name"]})

    assert str(refused.value) == (
        "hash_columns needs a secret to key the hash: set hash_secret under [sources.octopush] "
        "in .dlt/secrets.toml, or as SOURCES__OCTOPUSH__HASH_SECRET"
    )


@pytest.mark.parametrize(
    ("missing", "names"),
    [
        ({"api_login": None}, "api_login"),
        ({"api_key": ""}, "api_key"),
        ({"api_login": None, "api_key": None}, "api_login and api_key"),
    ],
)
def test_missing_credentials_say_where_dlt_reads_them(missing, names):
    with pytest.raises(OctopushConfigError) as refused:
        source_client(None, **CREDENTIALS | missing)

    assert str(refused.value) == (
        f"{names} missing: set them under [sources.octopush] in .dlt/secrets.toml, or as "
        "SOURCES__OCTOPUSH__API_LOGIN / SOURCES__OCTOPUSH__API_KEY"
    )


def test_the_client_checks_its_own_settings_naming_the_dlt_section():
    with pytest.raises(
        OctopushConfigError, match=re.escape("per_page must be between 1 and 10000")
    ):
        source_client(None, **CREDENTIALS | {"per_page": 0})
    client = source_client(None, **CREDENTIALS)

    assert (client.url, client.where) == (
        "https://api.example.com/v1/conversations/list",
        "dlt config section [sources.octopush]",
    )


def test_a_handed_client_is_used_as_it_is_and_anything_else_refused():
    client = OctopushClient(api_login="a", api_key="k")

    assert source_client(client, **CREDENTIALS | {"api_key": None}) is client
    with pytest.raises(OctopushConfigError) as refused:
        source_client({}, **CREDENTIALS)

    assert str(refused.value) == "client must be an OctopushClient, got dict"
