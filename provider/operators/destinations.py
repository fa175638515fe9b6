"""Turns an Airflow connection into the settings of a dlt destination.

Secrets should live in one place: the Airflow connections users already have. A Postgres
connection, a Google Cloud connection (extras as the Google provider stores them) or a DuckDB
file path become the credentials of dlt's ``postgres``, ``bigquery`` or ``duckdb`` destination.
Other destinations take their credentials from dlt's own configuration (environment variables
such as ``DESTINATION__SNOWFLAKE__CREDENTIALS`` or the ``dlt_secrets_toml`` Airflow variable).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlt.common.destination import Destination
from dlt.common.destination.exceptions import UnknownDestinationModule

from octopush_dlt.destinations import duckdb_credentials
from octopush_provider.exceptions import OctopushConfigError

if TYPE_CHECKING:
    from airflow.sdk import Connection

__all__ = ["build_destination"]

POSTGRES_DEFAULT_PORT = 5432
# libpq parameters a Postgres connection's extras may carry; the Postgres provider also keeps
# extras of its own there (``cursor``, ``iam``...), which libpq would refuse.
_LIBPQ_EXTRAS = ("sslmode", "sslcert", "sslkey", "sslrootcert", "application_name", "options")
# The Google provider wrote its extras with this prefix before 2.3 and still reads both forms.
_GOOGLE_PREFIX = "extra__google_cloud_platform__"
# Google connection settings that change who we authenticate as; dlt can't honour them, and
# silently loading as someone else would be worse than refusing.
_GOOGLE_UNSUPPORTED = ("key_secret_name", "credential_config_file", "impersonation_chain")
# What an anonymous connection sends as its bearer token. dlt takes no anonymous Google
# credentials, but it does take an access token; a BigQuery emulator ignores it, and Google
# refuses it as it would refuse no token at all.
ANONYMOUS_TOKEN = "anonymous"


def _where(connection: Connection) -> str:
    return f"Airflow connection {connection.conn_id!r}"


def _postgres(connection: Connection) -> dict[str, Any]:
    if not connection.host or not connection.schema:
        raise OctopushConfigError(
            f"{_where(connection)} needs a host and a schema (the database name) to load into "
            "Postgres"
        )
    extras = connection.extra_dejson
    credentials: dict[str, Any] = {
        "host": connection.host,
        "port": connection.port or POSTGRES_DEFAULT_PORT,
        "database": connection.schema,
        "username": connection.login,
        # dlt insists on a password; trust, peer and certificate authentication have none.
        "password": connection.password or "",
        "query": {name: str(extras[name]) for name in _LIBPQ_EXTRAS if extras.get(name)},
    }
    if extras.get("connect_timeout"):
        credentials["connect_timeout"] = int(extras["connect_timeout"])
    return {"credentials": credentials}


def _google_extra(extras: Mapping[str, Any], name: str) -> Any:
    return extras.get(name) or extras.get(_GOOGLE_PREFIX + name)


def _is_true(value: Any) -> bool:
    """A boolean extra, as the form saves it (``True``) or as JSON written by hand (``"true"``)."""
    return value is True or str(value).strip().lower() == "true"


def _anonymous_bigquery(connection: Connection, project: Any) -> dict[str, Any]:
    """No key and no real token: for a BigQuery emulator named by ``BIGQUERY_EMULATOR_HOST``."""
    # google-auth comes with the [bigquery] extra, which only BigQuery loads need.
    from google.oauth2.credentials import Credentials  # noqa: PLC0415

    if not project:
        raise OctopushConfigError(
            f"{_where(connection)} uses anonymous credentials, which name no project: set its "
            "extra 'project'"
        )
    return {"credentials": Credentials(token=ANONYMOUS_TOKEN), "project_id": project}


def _bigquery(connection: Connection) -> dict[str, Any]:
    extras = connection.extra_dejson
    project = _google_extra(extras, "project")
    # The Google provider's switch "Anonymous credentials (ignores all other settings)".
    if _is_true(_google_extra(extras, "is_anonymous")):
        return _anonymous_bigquery(connection, project)
    unsupported = [name for name in _GOOGLE_UNSUPPORTED if _google_extra(extras, name)]
    if unsupported:
        raise OctopushConfigError(
            f"{_where(connection)} sets {unsupported}, which dlt's BigQuery destination does not "
            "support: give the connection a service-account key (keyfile_dict or key_path), or "
            "leave both empty to use Application Default Credentials"
        )
    keyfile = _google_extra(extras, "keyfile_dict")
    key_path = _google_extra(extras, "key_path")
    options: dict[str, Any] = {}
    if keyfile:
        if isinstance(keyfile, str):
            try:
                keyfile = json.loads(keyfile)
            except ValueError:
                raise OctopushConfigError(
                    f"extra 'keyfile_dict' of {_where(connection)} is not valid JSON: paste the "
                    "whole service-account key file"
                ) from None
        options["credentials"] = keyfile
    elif key_path:
        try:
            options["credentials"] = json.loads(Path(key_path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise OctopushConfigError(
                f"extra 'key_path' of {_where(connection)} must name a readable JSON key file: "
                f"{type(error).__name__}"
            ) from None
    if project:
        options["project_id"] = project
    return options


def _duckdb(connection: Connection) -> dict[str, Any]:
    if not connection.host:
        raise OctopushConfigError(
            f"{_where(connection)} needs the DuckDB file path in its host field"
        )
    return {"credentials": connection.host}


# Destinations whose credentials can come from an Airflow connection, and how.
CONNECTION_DESTINATIONS: dict[str, Callable[[Connection], dict[str, Any]]] = {
    "duckdb": _duckdb,
    "postgres": _postgres,
    "bigquery": _bigquery,
}


def build_destination(
    destination: str,
    *,
    dataset_name: str,
    connection: Connection | None = None,
    duckdb_path: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> Destination[Any, Any]:
    """The dlt destination ``destination`` (a name such as ``postgres``), configured.

    Credentials come from ``connection`` (or ``duckdb_path``) when given, else from dlt's own
    configuration; ``options`` are passed to dlt's destination factory (e.g. ``location`` for
    BigQuery) and win over what the connection says.
    """
    if duckdb_path and connection is not None:
        raise OctopushConfigError("give duckdb_path or destination_conn_id, not both")
    settings: dict[str, Any] = {}
    if duckdb_path:
        if destination != "duckdb":
            raise OctopushConfigError(
                f"duckdb_path only applies to the duckdb destination, not {destination!r}"
            )
        settings["credentials"] = duckdb_path
    elif connection is not None:
        read = CONNECTION_DESTINATIONS.get(destination)
        if read is None:
            raise OctopushConfigError(
                f"destination {destination!r} can't take credentials from an Airflow connection "
                f"(only {sorted(CONNECTION_DESTINATIONS)} can): leave destination_conn_id empty "
                "and configure it the dlt way, e.g. "
                f"DESTINATION__{destination.upper()}__CREDENTIALS"
            )
        settings.update(read(connection))
    settings.update(options or {})
    if destination == "duckdb" and isinstance(settings.get("credentials"), str):
        settings["credentials"] = duckdb_credentials(
            settings["credentials"], dataset_name=dataset_name
        )
    try:
        factory = Destination.from_reference(destination, **settings)
    except UnknownDestinationModule:
        raise OctopushConfigError(
            f"destination {destination!r} is not a dlt destination: set the operator's "
            "destination to one dlt knows, e.g. duckdb, postgres or bigquery"
        ) from None
    assert factory is not None, "only a None reference resolves to None"
    return factory
