"""Airflow provider for Octopush; importing this package never imports Airflow."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

INTEGRATION_NAME = "Octopush"

# The connection form, declared as data: Airflow >= 3.2 reads it from here without importing the
# hook (and without wtforms); the hook converts the same dict for older Airflow versions.
CONNECTION_FIELDS: dict[str, Any] = {
    "per_page": {
        "label": "Page size",
        "description": "Conversations asked for per request (the API may serve fewer).",
        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": 10_000},
    },
    "concurrency": {
        "label": "Concurrent requests",
        "description": "Pages fetched at once after the first; lower it if the API answers 429.",
        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": 32},
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "How long to wait for the API to connect and to answer each request.",
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
    },
    "request_deadline": {
        "label": "Request deadline (seconds)",
        "description": "The longest one request may take, however slowly the API answers.",
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
    },
    "max_response_bytes": {
        "label": "Largest answer (bytes)",
        "description": "Answers larger than this, once decoded, are refused (default 64 MiB).",
        "schema": {"type": ["integer", "null"], "minimum": 1},
    },
    "max_pages": {
        "label": "Most pages a run reads",
        "description": "A safety cap, off when empty; a capped run keeps the cursor.",
        "schema": {"type": ["integer", "null"], "minimum": 1},
    },
    "allow_insecure_http": {
        "label": "Allow plain http",
        "description": "Send the API key over plain http to a non-loopback host (proxies only).",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port"],
    "relabeling": {"login": "API login", "password": "API key", "host": "Base URL"},
    "placeholders": {
        "login": "the e-mail address of your Octopush account",
        "password": "the API key from Octopush's API credentials page",
        "host": "https://api.octopush.com/v1/public (leave empty for the default)",
        "per_page": "100",
        "concurrency": "8",
        "timeout": "60",
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
