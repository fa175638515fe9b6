"""Names and defaults of the dlt source, kept in one place.

What each table is (name, key, cursor, columns) is :mod:`octopush_dlt.tables`'s: the names below
are read from it, for the modules that import them from here.
"""

from __future__ import annotations

from octopush_dlt.tables import CONVERSATIONS, MESSAGES
from octopush_provider.conversations import CURSOR_FIELD
from octopush_provider.settings import DEFAULT_DATASET_NAME, DEFAULT_PIPELINE_NAME

__all__ = [
    "BATCH_BYTES",
    "BATCH_ROWS",
    "CURSOR_COLUMN",
    "DEFAULT_CLOCK_SKEW_SECONDS",
    "DEFAULT_DATASET_NAME",
    "DEFAULT_DESTINATION",
    "DEFAULT_LAG_SECONDS",
    "DEFAULT_PIPELINE_NAME",
    "MAX_SLICES",
    "MESSAGES_PRIMARY_KEY",
    "MESSAGES_RESOURCE_NAME",
    "MESSAGES_TABLE_NAME",
    "NAMED_IN_LOG",
    "PRIMARY_KEY",
    "RESOURCE_NAME",
    "SLICE_CONVERSATIONS",
    "SOURCE_NAME",
    "TABLE_NAME",
]

SOURCE_NAME = "octopush"
RESOURCE_NAME = TABLE_NAME = CONVERSATIONS.name
PRIMARY_KEY = CONVERSATIONS.primary_key
CURSOR_COLUMN = CURSOR_FIELD  # CONVERSATIONS.cursor, typed as the one table with a cursor

DEFAULT_DESTINATION = "duckdb"

# Re-read conversations whose last message is up to this many seconds older than the cursor:
# a message stamped a little before it became visible in the API is still picked up.
DEFAULT_LAG_SECONDS = 300.0
# A last_message_at later than the start of the run by more than this is a server clock gone
# wrong: the row is loaded, but it must not become the cursor, or later runs would stop early.
DEFAULT_CLOCK_SKEW_SECONDS = 600.0
# Pages are merged into one Arrow table of about this many rows before dlt sees them, so that
# dlt's per-item work (~4 ms of the GIL an item, while pages download) is paid once per batch
# rather than once per page. Measured at 1M conversations, one run each: peak RSS 325 MiB at
# 5,000 rows, 336 at 10,000, 354 at 20,000. Messages are batched alike: up to this many parsed
# messages (some 10 MB of Python objects), or BATCH_BYTES of their pages, wait for their table.
BATCH_ROWS = 10_000
# ... or of about this many bytes of pages as sent, when rows are large: a batch of 10,000 rows
# of 600 KB each would hold 6 GB.
BATCH_BYTES = 32 * 1024 * 1024

MESSAGES_RESOURCE_NAME = MESSAGES_TABLE_NAME = MESSAGES.name
MESSAGES_PRIMARY_KEY = MESSAGES.primary_key
# A first load commits every this many conversations (with their messages and the backfill
# position), so that a load killed part-way redoes at most one slice.
SLICE_CONVERSATIONS = 5_000
# ... or fewer, whose rows weigh this many bytes as JSON: a slice is held whole until it is
# loaded, and 5,000 rows of 600 KB would be 3 GB. Real rows (a few KB) reach 5,000 first; with
# the read's 64 MiB ahead and a batch's 32 MiB, a slice this size stays far under 1 GiB. Each
# slice reads the list again down to where the last one ended: a smaller bound means more reads.
SLICE_BYTES = 128 * 1024 * 1024
# A first load ends after this many slices even if the account keeps growing faster than it
# loads: the bound turns a runaway into an error.
MAX_SLICES = 10_000
# Conversations named in the log when the two tables disagree, or when messages are kept apart.
NAMED_IN_LOG = 5
