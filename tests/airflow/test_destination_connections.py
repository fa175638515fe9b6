"""Airflow connections become dlt destination settings, as dlt then resolves them.

Nothing here reaches a warehouse: the settings are resolved by dlt's own configuration code,
which is where a wrong key name or a lost password would show.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dlt
import pytest
from airflow.sdk import Connection

from octopush_dlt.cli import _destination as cli_destination
from octopush_provider.exceptions import OctopushConfigError
from octopush_provider.operators.destinations import build_destination

SERVICE_ACCOUNT = {
    "type": "service_account",
    "project_id": "key-project",
    "private_key_id": "0123",
    "private_key": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
    "client_email": "loader@key-project.iam.gserviceaccount.com",
    "client_id": "1",
    "token_uri": "https://oauth2.googleapis.com/token",
}


def resolved(destination: Any, *, dataset_name: str = "octopush") -> Any:
    """The destination's configuration as dlt resolves it before connecting."""
    spec = destination.spec()
    spec.dataset_name = dataset_name
    return destination.configuration(spec)


def google_connection(**extra: Any) -> Connection:
    return Connection(
        conn_id="google_cloud_default", conn_type="google_cloud_platform", extra=json.dumps(extra)
    )


def test_google_connection_with_a_keyfile_becomes_bigquery_credentials() -> None:
    connection = google_connection(
        keyfile_dict=json.dumps(SERVICE_ACCOUNT), project="warehouse-project"
    )

    config = resolved(
        build_destination(
            "bigquery", dataset_name="octopush", connection=connection, options={"location": "EU"}
        )
    )

    assert config.credentials.client_email == SERVICE_ACCOUNT["client_email"]
    assert (config.project_id, config.location) == ("warehouse-project", "EU")


def test_google_connection_with_a_key_path_in_the_old_extra_form(tmp_path: Path) -> None:
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(SERVICE_ACCOUNT))
    connection = google_connection(extra__google_cloud_platform__key_path=str(key_file))

    config = resolved(build_destination("bigquery", dataset_name="octopush", connection=connection))

    assert config.credentials.client_email == SERVICE_ACCOUNT["client_email"]
    assert config.credentials.project_id == "key-project"


@pytest.mark.parametrize("switch", [True, "true"], ids=["form", "hand-written JSON"])
def test_anonymous_google_connection_sends_no_key_to_its_project(switch: Any) -> None:
    # The Google provider's "Anonymous credentials" switch, for a local emulator; the key the
    # connection also holds is ignored, as the Google provider ignores it.
    connection = google_connection(
        is_anonymous=switch, project="emulated", keyfile_dict=json.dumps(SERVICE_ACCOUNT)
    )

    config = resolved(build_destination("bigquery", dataset_name="octopush", connection=connection))

    assert config.project_id == "emulated"
    native = config.credentials.to_native_credentials()
    assert type(native).__name__ == "Credentials"
    assert native.token == "anonymous"
    assert not hasattr(native, "service_account_email")


def test_anonymous_google_connection_without_a_project_is_refused() -> None:
    connection = google_connection(is_anonymous=True)

    with pytest.raises(OctopushConfigError, match="extra 'project'"):
        build_destination("bigquery", dataset_name="octopush", connection=connection)


def test_google_connection_that_impersonates_is_refused() -> None:
    connection = google_connection(impersonation_chain="someone@example.iam.gserviceaccount.com")

    with pytest.raises(OctopushConfigError, match="impersonation_chain"):
        build_destination("bigquery", dataset_name="octopush", connection=connection)


def test_postgres_connection_becomes_postgres_credentials() -> None:
    connection = Connection(
        conn_id="warehouse",
        conn_type="postgres",
        host="db.internal",
        port=5433,
        login="loader",
        password="p@ss/word:1",
        schema="analytics",
        extra=json.dumps({"sslmode": "require", "cursor": "realdictcursor"}),
    )

    config = resolved(build_destination("postgres", dataset_name="octopush", connection=connection))

    credentials = config.credentials
    assert (credentials.host, credentials.port, credentials.database) == (
        "db.internal",
        5433,
        "analytics",
    )
    assert (credentials.username, credentials.password) == ("loader", "p@ss/word:1")
    assert credentials.query == {"sslmode": "require"}


def test_duckdb_file_named_like_the_dataset_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OctopushConfigError, match="rename the file"):
        build_destination(
            "duckdb", dataset_name="octopush", duckdb_path=str(tmp_path / "octopush.duckdb")
        )


def test_connection_for_a_destination_configured_the_dlt_way_is_refused() -> None:
    connection = Connection(conn_id="warehouse", conn_type="snowflake")

    with pytest.raises(OctopushConfigError, match="DESTINATION__SNOWFLAKE__CREDENTIALS"):
        build_destination("snowflake", dataset_name="octopush", connection=connection)


@pytest.mark.parametrize(
    "make",
    [
        lambda path: build_destination("duckdb", dataset_name="octopush", duckdb_path=path),
        lambda path: build_destination(
            "duckdb", dataset_name="octopush", connection=Connection(conn_id="w", host=path)
        ),
        lambda path: cli_destination("duckdb", pipeline_name="p", dataset_name="octopush"),
    ],
    ids=["operator duckdb_path", "operator connection", "octopush-load"],
)
def test_duckdb_loads_run_with_bounded_memory(tmp_path: Path, monkeypatch, make) -> None:
    """DuckDB would take 80 % of the machine; the load's merge then grows with the account."""
    monkeypatch.chdir(tmp_path)
    pipeline = dlt.pipeline(
        "bounded", destination=make(str(tmp_path / "w.duckdb")), pipelines_dir=str(tmp_path / "p")
    )
    with pipeline.sql_client() as client:
        limit, threads = client.execute_sql(
            "SELECT current_setting('memory_limit'), current_setting('threads')"
        )[0]
    assert (limit, threads) == ("61.0 MiB", 1)
