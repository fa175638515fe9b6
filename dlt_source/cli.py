"""``octopush-load``: load Octopush conversations and messages into a warehouse from a shell.

With ``--demo`` it starts the bundled sandbox and loads from it, so the whole path (HTTP,
paging, retries, dlt, the warehouse) runs with nothing configured.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from octopush_dlt.deletions import DEFAULT_MIN_SHARE, MODES
from octopush_dlt.destinations import duckdb_credentials, postgres_credentials
from octopush_dlt.receipts import DEFAULT_WINDOW_SECONDS
from octopush_dlt.settings import (
    DEFAULT_DATASET_NAME,
    DEFAULT_DESTINATION,
    DEFAULT_LAG_SECONDS,
    DEFAULT_PIPELINE_NAME,
)
from octopush_provider.exceptions import OctopushConfigError, OctopushError
from octopush_provider.settings import LOAD_CONCURRENCY

DEMO_CONVERSATIONS = 5_000

_Failure = TypeVar("_Failure", bound=BaseException)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="octopush-load",
        description="Load Octopush conversations and their messages incrementally with dlt. "
        "Credentials come from "
        "dlt config: [sources.octopush] api_login/api_key in .dlt/secrets.toml, or "
        "SOURCES__OCTOPUSH__API_LOGIN / SOURCES__OCTOPUSH__API_KEY.",
        epilog="To load from a sandbox you started yourself: run octopush-sandbox --port 8080, "
        "which prints its base URL, api-login and api-key, then give those to octopush-load as "
        "--base-url and SOURCES__OCTOPUSH__API_LOGIN / SOURCES__OCTOPUSH__API_KEY.",
    )
    parser.add_argument("--demo", action="store_true", help="load from the bundled sandbox")
    parser.add_argument(
        "--demo-conversations",
        type=int,
        default=DEMO_CONVERSATIONS,
        help="conversations in the demo sandbox (default: %(default)s)",
    )
    parser.add_argument(
        "--destination",
        default=DEFAULT_DESTINATION,
        help="dlt destination: duckdb, postgres, bigquery, ... (default: %(default)s)",
    )
    parser.add_argument("--dataset-name", default=DEFAULT_DATASET_NAME)
    parser.add_argument(
        "--base-url",
        help="the API to read, e.g. a sandbox's URL (default: [sources.octopush] base_url, "
        "else Octopush's)",
    )
    parser.add_argument("--pipeline-name", default=DEFAULT_PIPELINE_NAME)
    parser.add_argument(
        "--full-refresh",
        action="store_true",
        help="drop the table and the cursor, then load everything again",
    )
    parser.add_argument("--per-page", type=int, help="page size to ask for (default: 100)")
    parser.add_argument(
        "--concurrency", type=int, help=f"pages fetched at once (default: {LOAD_CONCURRENCY})"
    )
    parser.add_argument(
        "--resources",
        type=_resources,
        help="tables to load, comma-separated: conversations or conversations,messages "
        "(default: both)",
    )
    parser.add_argument("--start-date", help="first load only: skip older conversations")
    parser.add_argument(
        "--lag-seconds",
        type=float,
        help=f"re-read this much before the cursor (default: {DEFAULT_LAG_SECONDS:g})",
    )
    parser.add_argument(
        "--receipts-window-seconds",
        type=float,
        help="read conversations again while an outbound message sent this recently waits for "
        f"its delivery status (default: {DEFAULT_WINDOW_SECONDS:g}; 0: off)",
    )
    parser.add_argument(
        "--max-pages",
        type=int,
        help="safety cap on the pages one run reads; a capped run keeps the cursor (default: none)",
    )
    parser.add_argument(
        "--hash-column",
        action="append",
        dest="hash_columns",
        metavar="NAME",
        help="replace this column by its HMAC-SHA256, keyed by [sources.octopush] hash_secret "
        "(repeatable)",
    )
    parser.add_argument(
        "--drop-column",
        action="append",
        dest="drop_columns",
        metavar="NAME",
        help="leave this column out of the warehouse (repeatable)",
    )
    parser.add_argument(
        "--detect-deletes",
        action="store_true",
        help="read every page and flag the conversations the list no longer returns",
    )
    parser.add_argument(
        "--deletes-mode",
        choices=MODES,
        help="with --detect-deletes: flag deleted conversations (soft, default) or remove them",
    )
    parser.add_argument(
        "--deletes-min-share",
        type=float,
        help="with --detect-deletes: mark nothing if the list returns under this share of "
        f"the table (default: {DEFAULT_MIN_SHARE:g})",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    return parser


def _resources(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


def _source_options(args: argparse.Namespace) -> dict[str, Any]:
    options = {
        "base_url": args.base_url,
        "per_page": args.per_page,
        "concurrency": args.concurrency,
        "start_date": args.start_date,
        "lag_seconds": args.lag_seconds,
        "receipts_window_seconds": args.receipts_window_seconds,
        "resources": args.resources,
        "max_pages": args.max_pages,
        "hash_columns": args.hash_columns,
        "drop_columns": args.drop_columns,
        "detect_deletes": args.detect_deletes or None,
        "deletes_mode": args.deletes_mode,
        "deletes_min_share": args.deletes_min_share,
    }
    return {name: value for name, value in options.items() if value is not None}


@contextmanager
def _demo_sandbox(conversations: int) -> Iterator[dict[str, Any]]:
    """Serve a seeded sandbox for the length of the run; yields the source's credentials."""
    from octopush_provider.sandbox import (  # noqa: PLC0415 - only the demo needs the sandbox
        DEFAULT_API_KEY,
        DEFAULT_API_LOGIN,
        ConversationStore,
        SandboxServer,
    )

    with SandboxServer(ConversationStore.generate(conversations)) as sandbox:
        print(f"demo: sandbox with {conversations} conversations at {sandbox.base_url}")
        yield {
            "api_login": DEFAULT_API_LOGIN,
            "api_key": DEFAULT_API_KEY,
            "base_url": sandbox.base_url,
        }


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and the errors behind it, outermost first; a chain that loops ends."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _behind(error: BaseException, kind: type[_Failure]) -> _Failure | None:
    """The ``kind`` of error behind dlt's wrappers, if that is what failed."""
    return next((seen for seen in _chain(error) if isinstance(seen, kind)), None)


def _out_of_duckdb_memory(error: BaseException) -> str | None:
    """DuckDB's own words, when it ran out of the memory it may use (rows of hundreds of KB)."""
    texts = (" ".join(str(seen).split()) for seen in _chain(error))
    saying = [text for text in texts if "failed to pin block" in text or "Out of Memory" in text]
    return saying[-1].split(" Possible solutions:")[0] if saying else None  # DuckDB's own


def _one_line(error: BaseException, destination: str) -> str | None:
    """What to tell the user of a failure they can mend, in one line (None: a bug, traceback)."""
    from dlt.destinations.exceptions import DestinationConnectionError  # noqa: PLC0415
    from dlt.pipeline.exceptions import PipelineStepFailed  # noqa: PLC0415

    if (cause := _behind(error, OctopushError)) is not None:
        return str(cause)
    if destination == "duckdb" and (words := _out_of_duckdb_memory(error)) is not None:
        return (
            f"the duckdb destination ran out of memory loading rows this large ({words}): DuckDB "
            "holds a row group's values in memory, which its memory_limit (64MB) cannot take "
            "for rows of hundreds of KB; load into postgres, or see "
            "docs/scale.md#tuning-and-memory"
        )
    reason: BaseException | None = None
    if (unopened := _behind(error, DestinationConnectionError)) is not None:
        reason = unopened.inner_exc
    elif (failed := _behind(error, PipelineStepFailed)) is not None and failed.step == "sync":
        reason = failed.exception  # dlt's first contact with the destination
    if reason is None:
        return None
    return (
        f"could not open the {destination} destination: {' '.join(str(reason).split())}; check "
        f"its credentials (destination.{destination}.credentials, or the environment variable "
        f"DESTINATION__{destination.upper()}__CREDENTIALS)"
    )


def _destination(name: str, *, pipeline_name: str, dataset_name: str) -> Any:
    """The destination to load into; DuckDB in the working directory unless configured.

    dlt remembers a DuckDB file's path in its local pipeline state, so without this a second
    run from another directory would load into the first directory's file.
    """
    import dlt  # noqa: PLC0415

    configured: Any = dlt.secrets.get(f"destination.{name}.credentials")
    if name == "postgres" and isinstance(configured, str):
        return dlt.destinations.postgres(credentials=postgres_credentials(configured))
    if name != "duckdb" or configured:
        return name
    path = str(Path.cwd() / f"{pipeline_name}.duckdb")
    return dlt.destinations.duckdb(duckdb_credentials(path, dataset_name=dataset_name))


def _check_flags(args: argparse.Namespace) -> None:
    """Refuse flags that would do nothing, rather than run without them."""
    if args.demo and args.base_url:
        raise OctopushConfigError("--base-url has no use with --demo, which serves its own sandbox")
    if not args.detect_deletes:
        for flag, value in (
            ("--deletes-mode", args.deletes_mode),
            ("--deletes-min-share", args.deletes_min_share),
        ):
            if value is not None:
                raise OctopushConfigError(
                    f"{flag} does nothing without --detect-deletes: add it, or leave {flag} out"
                )


def _pipeline(args: argparse.Namespace) -> Any:
    """dlt's pipeline; a destination dlt does not know or a working folder it cannot write, in
    one line."""
    import dlt  # noqa: PLC0415 - keeps --help instant
    from dlt.common.destination.exceptions import UnknownDestinationModule  # noqa: PLC0415

    destination = _destination(
        args.destination, pipeline_name=args.pipeline_name, dataset_name=args.dataset_name
    )
    try:
        return dlt.pipeline(
            pipeline_name=args.pipeline_name,
            destination=destination,
            dataset_name=args.dataset_name,
        )
    except UnknownDestinationModule as error:
        raise OctopushConfigError(
            f"--destination {args.destination!r} is not a dlt destination: use duckdb, postgres, "
            "bigquery or another of dlt's destinations"
        ) from error
    except OSError as error:
        raise OctopushConfigError(
            f"dlt cannot write its working folder ({error}): set DLT_DATA_DIR to a folder it can "
            "write"
        ) from error


def _run(args: argparse.Namespace) -> int:
    from octopush_dlt import octopush_source, run_load  # noqa: PLC0415

    _check_flags(args)
    pipeline = _pipeline(args)
    options = _source_options(args)
    if args.demo:
        with _demo_sandbox(args.demo_conversations) as credentials:
            summary = run_load(
                pipeline, octopush_source(**credentials, **options), full_refresh=args.full_refresh
            )
    else:
        summary = run_load(pipeline, octopush_source(**options), full_refresh=args.full_refresh)
    print("\n".join(summary.lines()))
    print(f"explore it: dlt pipeline {args.pipeline_name} info | trace")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("dlt", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # dlt logs a failed load job with its traceback; the run's own error line says what to do.
    logging.getLogger("dlt").addFilter(_without_traceback)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return _run(args)
    except (Exception, KeyboardInterrupt) as error:
        if (stop := _behind(error, KeyboardInterrupt)) is not None:
            name = "SIGTERM" if isinstance(stop, _Terminated) else "SIGINT"
            print(
                f"octopush-load: stopped by {name}: nothing this run had not committed was "
                "kept; the next run carries on from the last commit",
                file=sys.stderr,
            )
            return 128 + (signal.SIGTERM if name == "SIGTERM" else signal.SIGINT)
        message = _one_line(error, args.destination)
        if message is None:
            raise
        print(f"octopush-load: {message}", file=sys.stderr)
        return 1


def _without_traceback(record: logging.LogRecord) -> bool:
    """A dlt log record without the traceback it carries or writes into its message."""
    message = record.getMessage()
    if (cut := message.find("Traceback (most recent call last)")) >= 0:
        record.msg, record.args = f"{message[:cut].rstrip()} (traceback left out)", ()
    record.exc_info, record.exc_text = None, None
    return True


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the run is, as Ctrl-C is: dlt drops what it had not committed."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


if __name__ == "__main__":
    raise SystemExit(main())
