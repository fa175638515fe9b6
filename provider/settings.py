"""Constants of the Octopush API and of this client's defaults, kept in one place."""

from __future__ import annotations

DEFAULT_BASE_URL = "https://api.octopush.com/v1/public"
CONVERSATIONS_PATH = "conversations/list"
MESSAGES_PATH = "conversations/messages/list"

API_LOGIN_HEADER = "api-login"
API_KEY_HEADER = "api-key"

PAGE_PARAM = "page"
PER_PAGE_PARAM = "per_page"
FIRST_PAGE = 1
DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 10_000

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
# requests' read timeout bounds each socket read; this bounds the whole request (seconds).
DEFAULT_REQUEST_DEADLINE = 120.0
# And this bounds one page, its retries and their waits included: a server that drips every
# answer would otherwise hold a page for max_attempts x request_deadline (12 minutes).
DEFAULT_PAGE_DEADLINE = 300.0
# Every read has an end: past this many pages (10 million conversations at the default
# per_page, some ten minutes of a server serving new rows forever) a read fails, unless told a
# higher ceiling. No account we know comes near; max_pages stops a read earlier, on purpose.
DEFAULT_PAGE_CEILING = 100_000
# The decoded size past which an answer is refused: far above any real page (about 400 bytes a
# conversation, 10,000 at most a page), far below what would strain a worker's memory.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# How much of an error answer is read, for the excerpt in the error message.
ERROR_BODY_BYTES = 64 * 1024
# A body that is not JSON may be a truncated one, gone on the next try; the same answer twice is
# not going away.
NON_JSON_ATTEMPTS = 2
# The largest values the connection form accepts.
MAX_TIMEOUT = 600.0
MAX_REQUEST_DEADLINE = 3600.0
MAX_RESPONSE_BYTES_CAP = 1024 * 1024 * 1024
MAX_PAGES_CAP = 1_000_000
DEFAULT_CONCURRENCY = 1  # the bare client reads strictly in order unless told otherwise
# Pages (or conversations' messages) in flight for warehouse loads, from the hook and the dlt
# source. Measured on the sandbox with 20 ms latency: 100k conversations in 1.38-1.40x the time
# of an 8-connection download with 8, 1.10-1.17x with 12, 1.03x with 16; past 12 the gain is
# small and the load on the API is not, which answers crowds with 429s that slow every client.
LOAD_CONCURRENCY = 12
MAX_CONCURRENCY = 32

# The tables a load writes, one a list endpoint, and where it writes them unless told: named here
# so that the Airflow operator reads them without importing dlt (seconds, on every DAG parse).
# ``octopush_dlt.tables`` is the registry that describes each table.
CONVERSATIONS_TABLE = "conversations"
MESSAGES_TABLE = "messages"
DEFAULT_DATASET_NAME = "octopush"
DEFAULT_PIPELINE_NAME = "octopush_conversations"

USER_AGENT = "airflow-provider-octopush"

# Status codes the API documents, and the ones a public API answers when it is busy or down.
RETRYABLE_STATUS_CODES = frozenset({408, 425, 429, 500, 502, 503, 504})
