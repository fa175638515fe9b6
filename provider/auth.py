"""Header authentication: Octopush wants both ``api-login`` and ``api-key`` on every request."""

from __future__ import annotations

from requests import PreparedRequest
from requests.auth import AuthBase

from octopush_provider.redaction import mask
from octopush_provider.settings import API_KEY_HEADER, API_LOGIN_HEADER


class OctopushAuth(AuthBase):
    """Sets the two Octopush headers; its ``repr`` never shows the key."""

    def __init__(self, api_login: str, api_key: str) -> None:
        self.api_login = api_login
        self.api_key = api_key

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        request.headers[API_LOGIN_HEADER] = self.api_login
        request.headers[API_KEY_HEADER] = self.api_key
        return request

    def __repr__(self) -> str:
        return f"OctopushAuth(api_login={self.api_login!r}, api_key={mask(self.api_key)!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, OctopushAuth)
            and other.api_login == self.api_login
            and other.api_key == self.api_key
        )

    def __hash__(self) -> int:
        return hash((self.api_login, self.api_key))
