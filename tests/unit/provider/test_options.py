"""The client's settings are checked before any I/O, each error naming the setting at fault."""

from __future__ import annotations

from typing import Any

import pytest

from octopush_provider.exceptions import OctopushConfigError
from octopush_provider.options import check_base_url, check_options

VALID: dict[str, Any] = {
    "api_login": "someone@example.com",
    "api_key": "k",
    "base_url": "https://api.example.com/v1/public/",
    "allow_insecure_http": False,
    "per_page": 100,
    "concurrency": 4,
    "request_deadline": 120.0,
    "page_deadline": 300,
    "max_response_bytes": 1024,
    "max_bytes_ahead": 2048,
    "page_ceiling": 10,
    "max_pages": None,
}


def test_valid_settings_return_the_base_url_without_its_trailing_slash():
    assert check_options(**VALID) == "https://api.example.com/v1/public"


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("api_login", "", "api_login is required: the API login of the account"),
        ("api_key", None, "api_key is required: the API key of the account"),
        ("per_page", True, "per_page must be an integer, got True"),
        ("per_page", 10_001, "per_page must be between 1 and 10000"),
        ("concurrency", "4", "concurrency must be an integer, got '4'"),
        ("concurrency", 33, "concurrency must be between 1 and 32"),
        ("request_deadline", 0, "request_deadline must be a number > 0, got 0"),
        ("page_deadline", -1.5, "page_deadline must be a number > 0, got -1.5"),
        ("max_response_bytes", 1.5, "max_response_bytes must be a whole number > 0, got 1.5"),
        ("max_bytes_ahead", False, "max_bytes_ahead must be a whole number > 0, got False"),
        ("page_ceiling", 0, "page_ceiling must be a whole number > 0, got 0"),
        ("max_pages", 0, "max_pages must be a whole number > 0, got 0"),
    ],
)
def test_a_wrong_setting_is_refused_naming_it(setting, value, says):
    with pytest.raises(OctopushConfigError) as raised:
        check_options(**(VALID | {setting: value}))

    assert str(raised.value) == says


def test_the_first_wrong_setting_in_argument_order_is_the_one_named():
    with pytest.raises(OctopushConfigError, match=r"^per_page"):
        check_options(**(VALID | {"per_page": 0, "page_ceiling": 0}))


@pytest.mark.parametrize(
    ("base_url", "setting"),
    [
        ("ftp://api.example.com", "base_url"),
        ("https://", "base_url"),
        ("https://api.example.com/v1?x=1", "base_url"),
        ("https://api.example.com/v1#top", "base_url"),
        ("http://api.example.com/v1", "allow_insecure_http"),
    ],
)
def test_an_unsafe_or_malformed_base_url_names_the_setting_to_change(base_url, setting):
    with pytest.raises(OctopushConfigError) as raised:
        check_base_url(base_url, allow_insecure_http=False)

    assert raised.value.setting == setting


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "127.8.9.10"])
def test_plain_http_to_this_machine_is_allowed(host):
    assert check_base_url(f"http://{host}:8080/v1/", allow_insecure_http=False) == (
        f"http://{host}:8080/v1"
    )


def test_plain_http_to_another_host_is_allowed_when_asked_for():
    url = "http://proxy.internal/v1"

    assert check_base_url(url, allow_insecure_http=True) == url
