"""Errors of the dlt layer: the privacy settings and deletion detection.

They derive from the core's :class:`~octopush_provider.exceptions.OctopushError`, so one
``except OctopushError`` still catches every error a load raises::

    OctopushError                       (octopush_provider.exceptions)
    ├── OctopushConfigError
    │   └── OctopushPrivacyError        hashing/dropping settings that are wrong, or differ from
    │                                   the ones the tables were loaded with; raised before I/O
    └── OctopushDeletionError           deletion detection refused to mark rows (the list looked
                                        broken, or the read stopped at max_pages)

Both are raised by the dlt source only; the HTTP core never raises them.
"""

from __future__ import annotations

from octopush_provider.exceptions import OctopushConfigError, OctopushError

__all__ = ["OctopushDeletionError", "OctopushPrivacyError"]


class OctopushPrivacyError(OctopushConfigError):
    """Columns to hash or drop are wrong, the secret is missing, or they changed since the load."""


class OctopushDeletionError(OctopushError):
    """Deletion detection saw too few conversations to trust the list, and marked none."""
