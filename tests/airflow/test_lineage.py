"""OpenLineage datasets of a load, as the OpenLineage provider receives them from the operator.

Real loads into DuckDB and Postgres, described by the operator's lineage module; the COMPLETE
event that a real Airflow deployment emits is checked in ``test_celery.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import dlt

from octopush_dlt.runner import run_load
from octopush_provider.operators.lineage import describe_load, to_operator_lineage
from octopush_provider.sandbox import SandboxServer
from tests.airflow.support import POSTGRES_URL
from tests.helpers import sandbox_source

COLUMNS = {"conversation_id": "text", "last_message_at": "timestamp", "color": "bigint"}


def lineage_of(pipeline: dlt.Pipeline, sandbox: SandboxServer) -> tuple[object, int]:
    """Load, then the lineage the operator would report, and the rows the load wrote."""
    summary = run_load(pipeline, sandbox_source(sandbox))
    lineage = to_operator_lineage(describe_load(pipeline, endpoints=[sandbox.url]))
    return lineage, summary.conversations_loaded


def check_output(lineage: object, *, namespace: str, name: str, rows: int) -> None:
    (output,) = [table for table in lineage.outputs if table.name == name]
    assert output.namespace == namespace
    assert {table.name.rsplit(".", 1)[-1] for table in lineage.outputs} == {
        "conversations",
        "messages",
    }
    fields = {field.name: field.type for field in output.facets["schema"].fields}
    assert fields.items() >= COLUMNS.items()
    assert output.outputFacets["outputStatistics"].rowCount == rows


def test_the_input_is_the_endpoint_and_the_output_the_duckdb_table(
    sandbox: SandboxServer, make_pipeline: Callable[..., dlt.Pipeline], tmp_path
) -> None:
    lineage, _ = lineage_of(make_pipeline("octopush_lineage"), sandbox)

    port = sandbox.url.split(":")[2].split("/")[0]
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        (f"http://127.0.0.1:{port}", "/v1/public/conversations/list")
    ]
    duckdb_file = tmp_path / "octopush_lineage.duckdb"
    check_output(
        lineage, namespace=f"duckdb://{duckdb_file}", name="octopush.conversations", rows=250
    )


def test_a_postgres_table_is_named_as_openlineage_names_postgres_tables(
    sandbox: SandboxServer,
    make_pipeline: Callable[..., dlt.Pipeline],
    postgres_dataset: str,
) -> None:
    destination = dlt.destinations.postgres(POSTGRES_URL)
    pipeline = make_pipeline("octopush_lineage", destination, dataset_name=postgres_dataset)
    lineage, _ = lineage_of(pipeline, sandbox)

    check_output(
        lineage,
        namespace="postgres://127.0.0.1:5432",
        name=f"test.{postgres_dataset}.conversations",
        rows=250,
    )

    sandbox.store.add_new(4)
    lineage, written = lineage_of(pipeline, sandbox)
    # The 4 new conversations and those re-read inside the lag: what this load wrote.
    assert written > 4
    check_output(
        lineage,
        namespace="postgres://127.0.0.1:5432",
        name=f"test.{postgres_dataset}.conversations",
        rows=written,
    )
