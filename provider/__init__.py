"""Airflow provider for Octopush; importing this package never imports Airflow.

What a user imports is here: :class:`OctopushClient`, the HTTP client the hook and the dlt
source read through, and the errors it raises (:mod:`octopush_provider.exceptions` draws their
tree).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from packaging.version import Version

from octopush_provider.client import OctopushClient
from octopush_provider.exceptions import (
    OctopushAuthError,
    OctopushCancelledError,
    OctopushConfigError,
    OctopushConnectionError,
    OctopushError,
    OctopushHTTPError,
    OctopushMismatchError,
    OctopushRequestError,
    OctopushResponseError,
    OctopushServerError,
    OctopushStalledReadError,
)
from octopush_provider.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_PER_PAGE,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_REQUEST_DEADLINE,
    LOAD_CONCURRENCY,
    MAX_CONCURRENCY,
    MAX_PAGES_CAP,
    MAX_PER_PAGE,
    MAX_REQUEST_DEADLINE,
    MAX_RESPONSE_BYTES_CAP,
    MAX_TIMEOUT,
    MESSAGES_PATH,
)

__all__ = [
    "CONNECTION_FIELDS",
    "OctopushAuthError",
    "OctopushCancelledError",
    "OctopushClient",
    "OctopushConfigError",
    "OctopushConnectionError",
    "OctopushError",
    "OctopushHTTPError",
    "OctopushMismatchError",
    "OctopushRequestError",
    "OctopushResponseError",
    "OctopushServerError",
    "OctopushStalledReadError",
    "get_provider_info",
]

__version__ = "0.1.0"

INTEGRATION_NAME = "Octopush"
PORT_LABEL = "Port (enter 0 for the Test button)"

# Airflow 3.3's Test button refuses a stored connection without a port, "Bad Request"
# (apache/airflow#73298, merged 2026-09-17): Port 0 lets it through. Set the first release with
# the fix here once one is out; the Port field and the advice then go away.
PORT_ZERO_SINCE = "3.3.0"
PORT_ZERO_FIXED_IN: str | None = None


def port_zero_needed(airflow_version: str | None = None) -> bool:
    """Whether Airflow (the installed one by default) needs Port 0 for the Test button."""
    if airflow_version is None:
        try:
            airflow_version = version("apache-airflow")
        except PackageNotFoundError:  # the dlt side, installed without Airflow
            return False
    installed = Version(airflow_version)
    return installed >= Version(PORT_ZERO_SINCE) and (
        PORT_ZERO_FIXED_IN is None or installed < Version(PORT_ZERO_FIXED_IN)
    )


# The connection form, declared as data: Airflow >= 3.2 reads it from here without importing the
# hook (and without wtforms); the hook reads the same bounds to refuse what the form would not let
# through. Airflow's UI enforces ``minimum`` and ``maximum`` (not ``exclusiveMinimum``) but renders
# no placeholder in number fields, so the defaults live in the descriptions.
CONNECTION_FIELDS: dict[str, Any] = {
    "per_page": {
        "label": "Page size",
        "description": (
            f"Conversations asked for per request, 1 to {MAX_PER_PAGE}; the API may serve fewer. "
            f"Empty: {DEFAULT_PER_PAGE}."
        ),
        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_PER_PAGE},
    },
    "concurrency": {
        "label": "Concurrent requests",
        "description": (
            f"Pages fetched at once after the first, 1 to {MAX_CONCURRENCY}; lower it if the API "
            f"answers 429. Empty: {LOAD_CONCURRENCY}."
        ),
        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_CONCURRENCY},
    },
    "connect_timeout": {
        "label": "Connect timeout (seconds)",
        "description": (
            f"How long to wait for the API to accept a connection. "
            f"Empty: {DEFAULT_CONNECT_TIMEOUT:g}."
        ),
        "schema": {"type": ["number", "null"], "minimum": 1, "maximum": MAX_TIMEOUT},
    },
    "read_timeout": {
        "label": "Read timeout (seconds)",
        "description": (
            f"How long the API may stay silent while it answers. Empty: {DEFAULT_READ_TIMEOUT:g}."
        ),
        "schema": {"type": ["number", "null"], "minimum": 1, "maximum": MAX_TIMEOUT},
    },
    "request_deadline": {
        "label": "Request deadline (seconds)",
        "description": (
            "The longest one request may take, however slowly the API answers. "
            f"Empty: {DEFAULT_REQUEST_DEADLINE:g}."
        ),
        "schema": {"type": ["number", "null"], "minimum": 1, "maximum": MAX_REQUEST_DEADLINE},
    },
    "max_response_bytes": {
        "label": "Largest answer (bytes)",
        "description": (
            "Answers larger than this, once decoded, are refused. "
            f"Empty: {DEFAULT_MAX_RESPONSE_BYTES} (64 MiB)."
        ),
        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_RESPONSE_BYTES_CAP},
    },
    "max_pages": {
        "label": "Most pages a run reads",
        "description": "A safety cap; a capped run keeps the cursor. Empty: no cap.",
        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_PAGES_CAP},
    },
    "messages_path": {
        "label": "Messages path",
        "description": (
            "Where the messages endpoint lives, below the base URL; change it only if Octopush "
            f"moves it. Empty: {MESSAGES_PATH}."
        ),
        "schema": {"type": ["string", "null"]},
    },
    "allow_insecure_http": {
        "label": "Allow plain http",
        "description": "Send the API key over plain http to a non-loopback host (proxies only).",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
    # "secret" in the name makes Airflow's masker hide it; "password" makes the form hide it.
    "hash_secret": {
        "label": "Hash secret",
        "description": "Keys the HMAC that replaces the columns an operator hashes "
        "(hash_columns). Changing it needs a full refresh.",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
}

# Port is visible only while the Test button needs it (see port_zero_needed): the Base URL
# holds the port. Asked once: it reads the installed Airflow's metadata.
_PORT_SHOWN = port_zero_needed()
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema"] if _PORT_SHOWN else ["schema", "port"],
    "relabeling": {
        "login": "API login",
        "password": "API key",
        "host": "Base URL",
    }
    | ({"port": PORT_LABEL} if _PORT_SHOWN else {}),
    "placeholders": {
        "login": "the e-mail address of your Octopush account",
        "password": "the API key from Octopush's API credentials page",
        "host": f"{DEFAULT_BASE_URL} (leave empty for the default)",
    },
}


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow's ``apache_airflow_provider`` entry point."""
    return {
        "package-name": "airflow-provider-octopush",
        "name": "Octopush",
        "description": "Load Octopush conversations into a warehouse with dlt.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION_NAME,
                "external-doc-url": "https://www.octopush.com/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": INTEGRATION_NAME,
                "python-modules": ["octopush_provider.hooks.octopush"],
            }
        ],
        "operators": [
            {
                "integration-name": INTEGRATION_NAME,
                "python-modules": ["octopush_provider.operators.octopush"],
            }
        ],
        "connection-types": [
            {
                "connection-type": "octopush",
                "hook-class-name": "octopush_provider.hooks.octopush.OctopushHook",
                "hook-name": "Octopush",
                "conn-fields": CONNECTION_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
    }
