"""The load operator: Octopush conversations and messages into any dlt destination, incrementally.

The operator is glue: the hook builds the client, :func:`octopush_dlt.octopush_source` reads it,
:func:`octopush_dlt.runner.run_load` loads and sums up. What makes it safe to run on any worker is
that dlt keeps the cursor in the destination: every run starts from an empty, temporary
pipelines folder, so dlt restores its state from the destination instead of trusting whatever an
earlier run left on some worker's disk.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import Asset, BaseHook, BaseOperator, Param
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

from octopush_provider.exceptions import OctopushConfigError
from octopush_provider.hooks.octopush import OctopushHook, as_bool
from octopush_provider.settings import (
    CONVERSATIONS_TABLE,
    DEFAULT_DATASET_NAME,
    DEFAULT_PIPELINE_NAME,
    MESSAGES_TABLE,
)

if TYPE_CHECKING:
    from airflow.sdk import Connection, Context

    from octopush_provider.client import OctopushClient
    from octopush_provider.operators.lineage import LoadLineage

__all__ = [
    "WEEKLY_DELETE_CHECK",
    "OctopushToDestinationOperator",
    "conversations_asset",
    "detect_deletes_param",
    "full_refresh_param",
    "table_asset",
]

# The source's resources, each loading its own table (``octopush_dlt.tables`` describes them).
TABLES = (CONVERSATIONS_TABLE, MESSAGES_TABLE)


def table_asset(
    *, destination: str, dataset_name: str, table: str, duckdb_path: str | None = None
) -> Asset:
    """The Asset of one table a load updates: schedule downstream DAGs on it.

    ``schedule=[table_asset(destination="postgres", dataset_name="octopush", table="messages")]``
    runs a DAG after every successful load of that table. A DuckDB file is a warehouse of its
    own, so ``duckdb_path`` (the operator's) is part of the URI:
    ``x-dlt://duckdb/data/warehouse.duckdb/octopush/messages`` for ``/data/warehouse.duckdb``.
    The ``x-`` scheme keeps Airflow (and the Postgres or Google providers, if installed) from
    validating it as a URI of theirs.
    """
    where = f"{destination}/{quote(duckdb_path.strip('/'))}" if duckdb_path else destination
    return Asset(uri=f"x-dlt://{where}/{dataset_name}/{table}")


# What dlt's own Airflow support (it reads the ``dlt_secrets_toml`` variable) warns about on every
# run under Airflow 3: it calls Airflow 2 APIs. The calls are dlt's, and they still work.
_DLT_AIRFLOW_DEPRECATIONS = (
    r"Using Variable\.get from `airflow\.models` is deprecated",
    r"The `airflow\.operators\.python\.get_current_context` attribute is deprecated",
)


@contextmanager
def _without_dlt_airflow_deprecations() -> Iterator[None]:
    """Keep dlt's Airflow 2 deprecation warnings out of the task log, and nothing else."""
    with warnings.catch_warnings():
        for message in _DLT_AIRFLOW_DEPRECATIONS:
            warnings.filterwarnings("ignore", message=message)
        yield


# ``detect_deletes`` for an hourly DAG with a ``detect_deletes`` param: on when a run asks for it,
# and once a week (the run due Sunday at 03:00 UTC). The check runs inside the hourly DAG rather
# than a DAG of its own, so that no other load of the table can run while it marks deletions.
# ``run_after``, unlike ``data_interval_end``, exists for runs triggered without a logical date.
WEEKLY_DELETE_CHECK = (
    "{{ params.detect_deletes"
    " or (dag_run.run_after.weekday() == 6 and dag_run.run_after.hour == 3) }}"
)


def conversations_asset(
    *, destination: str, dataset_name: str, duckdb_path: str | None = None
) -> Asset:
    """The Asset of the conversations table: see :func:`table_asset`."""
    return table_asset(
        destination=destination,
        dataset_name=dataset_name,
        table=CONVERSATIONS_TABLE,
        duckdb_path=duckdb_path,
    )


def _table_figures(summary: dict[str, Any], table: str) -> dict[str, Any]:
    """What an asset event of ``table`` reports: that table's figures of the run."""
    if table == MESSAGES_TABLE:
        return {**(summary.get(table) or {}), "load_id": summary["load_id"]}
    return {name: value for name, value in summary.items() if name != MESSAGES_TABLE}


# The trigger form marks a param required unless its type allows null; a switch is never empty.
_OPTIONAL_BOOLEAN = ["boolean", "null"]


def full_refresh_param() -> Param:
    """The DAG param that lets a manual run reload everything, as the trigger form shows it.

    Declare it as ``params={"full_refresh": full_refresh_param()}`` and pass the operator
    ``full_refresh="{{ params.full_refresh }}"``.
    """
    return Param(
        False,
        type=_OPTIONAL_BOOLEAN,
        title="Full refresh",
        description="Drop the table and the cursor, then load every conversation again.",
    )


def detect_deletes_param() -> Param:
    """The DAG param that lets a manual run check for deleted conversations.

    Declare it as ``params={"detect_deletes": detect_deletes_param()}`` and pass the operator
    ``detect_deletes=WEEKLY_DELETE_CHECK`` (or ``"{{ params.detect_deletes }}"``).
    """
    return Param(
        False,
        type=_OPTIONAL_BOOLEAN,
        title="Detect deletions",
        description="Read every page and flag the conversations deleted at the source.",
    )


class OctopushToDestinationOperator(BaseOperator):
    """Loads new and changed Octopush conversations into a dlt destination.

    :param octopush_conn_id: the ``octopush`` connection holding the API login and key.
    :param destination: a dlt destination name: ``duckdb``, ``postgres``, ``bigquery``, or any
        other dlt destination configured the dlt way (environment variables, or the
        ``dlt_secrets_toml`` Airflow variable).
    :param dataset_name: the schema (Postgres, DuckDB) or dataset (BigQuery) to load into.
    :param pipeline_name: the dlt pipeline; its state (the cursor) is kept in the destination
        under this name, so two DAGs loading the same dataset must use different names.
    :param destination_conn_id: an Airflow connection with the destination's credentials: a
        Postgres connection, a Google Cloud connection (``keyfile_dict``, ``key_path``,
        ``project``; Application Default Credentials when neither key is set), or a connection
        whose host is a DuckDB file path.
    :param duckdb_path: the DuckDB file to load into (an absolute path is best: relative paths
        resolve against the worker's working directory).
    :param destination_options: more arguments for dlt's destination factory, e.g.
        ``{"location": "EU"}`` for BigQuery.
    :param full_refresh: drop the table and the cursor, then load everything again. Templated:
        ``"{{ params.full_refresh }}"`` lets a manual run with ``{"full_refresh": true}`` reset.
    :param since: ISO 8601; the first load skips conversations whose last message is older
        (it is the source's ``start_date``, renamed so as not to clash with the operator's).
    :param lag_seconds: how far behind the cursor every run re-reads (the source's default when
        ``None``).
    :param receipts_window_seconds: how long after sending an outbound message whose delivery
        status is not final has its conversation read again on every run (the source's
        default, three days, when ``None``; 0 turns it off).
    :param hash_columns: columns replaced by their HMAC-SHA256, keyed by the Octopush connection's
        ``hash_secret`` extra, before they leave the worker.
    :param drop_columns: columns left out of the warehouse.
    :param detect_deletes: read every page and flag (``deletes_mode="soft"``) or remove
        (``"hard"``) the conversations the list no longer returns. Templated, so a DAG can
        turn it on for one run a week.
    :param deletes_min_share: mark nothing when the list returns under this share of the
        table (the source's default, 0.5, when ``None``).
    :param resources: the tables to load: ``["conversations"]`` or, by default, both
        conversations and messages.

    Returns a summary (counts, pages, cursor, load id, and a ``messages`` entry with that
    table's figures) to XCom: never rows, never secrets. Its outlets are one
    :func:`table_asset` per table loaded unless ``outlets`` is given; each asset event carries
    its own table's figures.
    """

    template_fields: Sequence[str] = (
        "octopush_conn_id",
        "dataset_name",
        "pipeline_name",
        "destination_conn_id",
        "duckdb_path",
        "full_refresh",
        "since",
        "detect_deletes",
    )

    def __init__(
        self,
        *,
        destination: str,
        octopush_conn_id: str = OctopushHook.default_conn_name,
        dataset_name: str = DEFAULT_DATASET_NAME,
        pipeline_name: str = DEFAULT_PIPELINE_NAME,
        destination_conn_id: str | None = None,
        duckdb_path: str | None = None,
        destination_options: Mapping[str, Any] | None = None,
        full_refresh: bool | str = False,
        since: str | None = None,
        lag_seconds: float | None = None,
        receipts_window_seconds: float | None = None,
        hash_columns: Sequence[str] | None = None,
        drop_columns: Sequence[str] | None = None,
        detect_deletes: bool | str = False,
        deletes_mode: str = "soft",
        deletes_min_share: float | None = None,
        resources: Sequence[str] = TABLES,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault(
            "outlets",
            [
                table_asset(
                    destination=destination,
                    dataset_name=dataset_name,
                    table=table,
                    duckdb_path=duckdb_path if destination == "duckdb" else None,
                )
                for table in resources
            ],
        )
        super().__init__(**kwargs)
        self.destination = destination
        self.octopush_conn_id = octopush_conn_id
        self.dataset_name = dataset_name
        self.pipeline_name = pipeline_name
        self.destination_conn_id = destination_conn_id
        self.duckdb_path = duckdb_path
        self.destination_options = dict(destination_options or {})
        self.full_refresh = full_refresh
        self.since = since
        self.lag_seconds = lag_seconds
        self.receipts_window_seconds = receipts_window_seconds
        self._client: OctopushClient | None = None
        self._lineage: LoadLineage | None = None
        self.hash_columns = list(hash_columns or [])
        self.drop_columns = list(drop_columns or [])
        self.detect_deletes = detect_deletes
        self.deletes_mode = deletes_mode
        self.deletes_min_share = deletes_min_share
        # Not ``self.resources``: BaseOperator keeps its executor resources there.
        self.tables = list(resources)

    def execute(self, context: Context) -> dict[str, Any]:
        """Run one incremental load and return its summary.

        A setup error (a connection missing or of the wrong type, a destination dlt does not
        know, a setting out of bounds) fails the task at once, in one line: no retry mends it.
        """
        with _without_dlt_airflow_deprecations():
            try:
                return self._load(context)
            except Exception as error:
                setup = _setup_error(error)
                if setup is None:
                    raise
                raise AirflowFailException(f"Octopush load not started: {setup}") from None

    def _load(self, context: Context) -> dict[str, Any]:
        # The summary's duration is the task's, from its first line: what the log's clock shows.
        started = time.monotonic()
        # dlt takes seconds to import: importing it here keeps every DAG file quick to parse.
        import dlt  # noqa: PLC0415

        from octopush_dlt import octopush_source, run_load  # noqa: PLC0415
        from octopush_provider.operators.destinations import build_destination  # noqa: PLC0415
        from octopush_provider.operators.lineage import describe_load  # noqa: PLC0415

        full_refresh = _flag("full_refresh", self.full_refresh)
        detect_deletes = _flag("detect_deletes", self.detect_deletes)
        destination = build_destination(
            self.destination,
            dataset_name=self.dataset_name,
            connection=_warehouse_connection(self.destination_conn_id, self.destination),
            duckdb_path=self.duckdb_path,
            options=self.destination_options,
        )
        source_options: dict[str, Any] = {
            "start_date": self.since,
            "resources": self.tables,
            "hash_columns": self.hash_columns,
            "drop_columns": self.drop_columns,
            "detect_deletes": detect_deletes,
            "deletes_mode": self.deletes_mode,
        }
        if self.lag_seconds is not None:
            source_options["lag_seconds"] = self.lag_seconds
        if self.receipts_window_seconds is not None:
            source_options["receipts_window_seconds"] = self.receipts_window_seconds
        if self.deletes_min_share is not None:
            source_options["deletes_min_share"] = self.deletes_min_share
        self.log.info(
            "Loading Octopush %s from connection %r into %s dataset %r (pipeline %r%s)",
            " and ".join(self.tables),
            self.octopush_conn_id,
            self.destination,
            self.dataset_name,
            self.pipeline_name,
            ", full refresh" if full_refresh else "",
        )
        hook = OctopushHook(octopush_conn_id=self.octopush_conn_id)
        if self.hash_columns:
            source_options["hash_secret"] = hook.hash_secret()
            if not source_options["hash_secret"]:
                raise OctopushConfigError(
                    f"hash_columns needs a secret: set the extra 'hash_secret' of {hook.where}"
                )
        with (
            hook.get_conn() as client,
            tempfile.TemporaryDirectory(prefix="octopush-dlt-") as pipelines_dir,
        ):
            self._client = client
            pipeline = dlt.pipeline(
                pipeline_name=self.pipeline_name,
                destination=destination,
                dataset_name=self.dataset_name,
                pipelines_dir=pipelines_dir,
            )
            source = octopush_source(client=client, **source_options)
            result = run_load(pipeline, source, full_refresh=full_refresh)
            try:
                urls = {CONVERSATIONS_TABLE: client.url, MESSAGES_TABLE: client.messages_url}
                endpoints = [urls[table] for table in self.tables]
                self._lineage = describe_load(pipeline, endpoints=endpoints)
            except Exception:  # lineage is an extra: it must never fail a load that succeeded
                self.log.warning("Could not describe this load for OpenLineage", exc_info=True)
        result = replace(result, duration_seconds=round(time.monotonic() - started, 3))
        for line in result.lines():
            self.log.info("%s", line)
        summary = result.as_dict()
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                table = outlet.uri.rsplit("/", 1)[-1]
                extra = _table_figures(summary, table) if table in TABLES else summary
                context["outlet_events"][outlet].extra = extra
        return summary

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the Octopush endpoint read; the tables written, with schema and rows."""
        from octopush_provider.operators.lineage import (  # noqa: PLC0415
            LoadLineage,
            to_operator_lineage,
        )

        return to_operator_lineage(self._lineage or LoadLineage(inputs=(), outputs=()))

    def on_kill(self) -> None:
        """Stop reading at once: the task was killed or ran past its ``execution_timeout``.

        The cancelled read fails the load before anything is committed, so the cursor stays
        where the last successful load put it and the next run reads what this one did not. A
        kill that comes once dlt is loading finds the read over: dlt commits the data and the
        cursor together, or neither.
        """
        if self._client is not None:
            self.log.warning("Task killed: cancelling the Octopush read")
            self._client.cancel()


def _warehouse_connection(conn_id: str | None, destination: str) -> Connection | None:
    """The connection holding the warehouse's credentials, if the operator names one."""
    if not conn_id:
        return None
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise OctopushConfigError(
            f"the warehouse connection {conn_id!r} (destination_conn_id) does not exist: create "
            f"it with the {destination} credentials (Admin > Connections, or the environment "
            f"variable AIRFLOW_CONN_{conn_id.upper()})"
        ) from None


def _setup_error(error: BaseException) -> OctopushConfigError | None:
    """The setup error behind ``error`` (dlt wraps what a source raises), if that is what it is."""
    seen: BaseException | None = error
    while seen is not None and not isinstance(seen, OctopushConfigError):
        seen = seen.__cause__ or seen.__context__
    return seen


def _flag(name: str, value: bool | str | None) -> bool:
    """A boolean argument, also from a rendered template (``"True"``, ``"false"``); a param
    left empty (``None``, rendered ``"None"``) is false."""
    if value in (None, "", "None"):
        return False
    try:
        return as_bool(value)
    except ValueError:
        raise OctopushConfigError(f"{name} must be true or false, got {value!r}") from None
