"""A local, faithful stand-in for Octopush's conversations list, for demos, tests and benchmarks.

It imports neither Airflow nor dlt: ``python -m octopush_provider.sandbox`` serves it from a shell.
"""

from __future__ import annotations

from octopush_provider.sandbox.data import ConversationStore
from octopush_provider.sandbox.server import (
    DEFAULT_API_KEY,
    DEFAULT_API_LOGIN,
    READ_ONLY_LOGIN,
    Fault,
    RequestRecord,
    SandboxServer,
)

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_LOGIN",
    "READ_ONLY_LOGIN",
    "ConversationStore",
    "Fault",
    "RequestRecord",
    "SandboxServer",
]
