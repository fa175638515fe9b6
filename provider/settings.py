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
DEFAULT_CONCURRENCY = 1  # the bare client reads strictly in order unless told otherwise
LOAD_CONCURRENCY = 8  # pages in flight for warehouse loads, from the hook and the dlt source
MAX_CONCURRENCY = 32

USER_AGENT = "airflow-provider-octopush"

# Status codes the API documents, and the ones a public API answers when it is busy or down.
RETRYABLE_STATUS_CODES = frozenset({408, 425, 429, 500, 502, 503, 504})
