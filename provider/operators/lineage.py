"""OpenLineage for a load: the Octopush endpoints it read and the warehouse tables it wrote.

What a load touched is only known while it runs (dlt's working folder is temporary), so the
operator collects it then, as plain data (:func:`describe_load`). OpenLineage itself is imported
only when the OpenLineage provider asks the operator for its facets (:func:`to_operator_lineage`),
so the provider stays optional.

Dataset names follow OpenLineage's naming spec where it has an entry: an HTTP endpoint is
``<scheme>://<host>[:<port>]`` + its path, Postgres ``postgres://<host>:<port>`` +
``<database>.<schema>.<table>``, BigQuery ``bigquery`` + ``<project>.<dataset>.<table>``. DuckDB
has none: its namespace is ``duckdb://<file>``, the name ``<schema>.<table>``; any other dlt
destination is ``<destination>://`` + ``<dataset>.<table>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import dlt

__all__ = ["LoadLineage", "TableLineage", "describe_load", "to_operator_lineage"]


@dataclass(frozen=True)
class TableLineage:
    """A table a load wrote: its OpenLineage identity, columns and rows written by this load."""

    namespace: str
    name: str
    fields: tuple[tuple[str, str], ...]
    rows: int


@dataclass(frozen=True)
class LoadLineage:
    """The endpoints a load read, as (namespace, name), and the tables it wrote."""

    inputs: tuple[tuple[str, str], ...]
    outputs: tuple[TableLineage, ...]


def endpoint_dataset(url: str) -> tuple[str, str]:
    """The OpenLineage (namespace, name) of an HTTP endpoint; never any credentials."""
    parts = urlsplit(url)
    authority = parts.hostname or ""
    if parts.port:
        authority += f":{parts.port}"
    return f"{parts.scheme}://{authority}", parts.path


def _table_location(pipeline: dlt.Pipeline) -> tuple[str, str]:
    """The namespace of the pipeline's destination and the prefix of its table names."""
    kind = pipeline.destination.destination_type.rsplit(".", 1)[-1]
    credentials: Any = pipeline.destination_client().config.credentials
    dataset = pipeline.dataset_name
    if kind == "postgres":
        namespace = f"postgres://{credentials.host}:{credentials.port}"
        return namespace, f"{credentials.database}.{dataset}"
    if kind == "bigquery":
        return "bigquery", f"{credentials.project_id}.{dataset}"
    if kind == "duckdb":
        return f"duckdb://{credentials.database}", dataset
    return f"{kind}://", dataset


def describe_load(pipeline: dlt.Pipeline, *, endpoints: Sequence[str]) -> LoadLineage:
    """What the pipeline's last run read from ``endpoints`` (URLs) and wrote, with row counts."""
    namespace, prefix = _table_location(pipeline)
    trace = pipeline.last_trace
    normalized = trace.last_normalize_info if trace else None
    row_counts = normalized.row_counts if normalized else {}
    schema = pipeline.default_schema
    outputs = tuple(
        TableLineage(
            namespace=namespace,
            name=f"{prefix}.{table}",
            fields=tuple(
                (column, str(hints.get("data_type", "")))
                for column, hints in schema.get_table_columns(table).items()
            ),
            rows=row_counts.get(table, 0),
        )
        for table in schema.data_table_names()
    )
    return LoadLineage(inputs=tuple(endpoint_dataset(url) for url in endpoints), outputs=outputs)


def to_operator_lineage(lineage: LoadLineage) -> Any:
    """The OpenLineage provider's ``OperatorLineage`` for a load."""
    # Imported here: the OpenLineage provider is an optional extra.
    from airflow.providers.common.compat.openlineage.facet import (  # noqa: PLC0415
        Dataset,
        OutputDataset,
        OutputStatisticsOutputDatasetFacet,
        SchemaDatasetFacet,
        SchemaDatasetFacetFields,
    )
    from airflow.providers.openlineage.extractors import OperatorLineage  # noqa: PLC0415

    return OperatorLineage(
        inputs=[Dataset(namespace=namespace, name=name) for namespace, name in lineage.inputs],
        outputs=[
            OutputDataset(
                namespace=table.namespace,
                name=table.name,
                facets={
                    "schema": SchemaDatasetFacet(
                        fields=[
                            SchemaDatasetFacetFields(name=name, type=data_type)
                            for name, data_type in table.fields
                        ]
                    )
                },
                outputFacets={
                    "outputStatistics": OutputStatisticsOutputDatasetFacet(rowCount=table.rows)
                },
            )
            for table in lineage.outputs
        ],
    )
