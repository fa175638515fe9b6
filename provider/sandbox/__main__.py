"""Serve the sandbox from a shell, so the demo and manual runs need no Octopush account.

``python -m octopush_provider.sandbox --conversations 5000 --fault-rate 0.05`` prints the base
URL and the sandbox credentials, then serves until Ctrl+C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType

from octopush_provider.sandbox.data import OFFSET_MODES, ConversationStore
from octopush_provider.sandbox.server import (
    DEFAULT_RANDOM_FAULTS,
    FAULT_KINDS,
    PAST_END_MODES,
    SandboxServer,
)


def _fault_kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(kind.strip() for kind in text.split(",") if kind.strip())
    unknown = [kind for kind in kinds if kind not in FAULT_KINDS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown fault kinds {unknown}; known: {FAULT_KINDS}")
    return kinds


def _page_sizes(text: str) -> dict[int, int]:
    try:
        pairs = [item.split(":") for item in text.split(",") if item.strip()]
        return {int(page): int(size) for page, size in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected PAGE:SIZE pairs such as 3:5,7:20, got {text!r}"
        ) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m octopush_provider.sandbox",
        description="Serve a local sandbox of Octopush's conversations-list endpoint.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    add("--port", type=int, default=8080, help="port to bind, 0 for any free one")
    add("--conversations", type=int, default=5000, help="how many conversations to generate")
    add("--seed", type=int, default=7, help="seed of the generated data and random faults")
    add("--offsets", choices=OFFSET_MODES, default="paris", help="how timestamps are written")
    add("--max-per-page", type=int, default=1000, help="cap applied to per_page")
    add("--past-end", choices=PAST_END_MODES, default="empty", help="answer past the last page")
    add("--latency-ms", type=float, default=0.0, help="delay added to every request")
    add("--fault-rate", type=float, default=0.0, help="share of requests that misbehave (0-1)")
    add(
        "--fault-kinds",
        type=_fault_kinds,
        default=DEFAULT_RANDOM_FAULTS,
        help=f"comma-separated kinds to pick from (default: {','.join(DEFAULT_RANDOM_FAULTS)})",
    )
    add("--churn-new", type=int, default=0, help="new conversations before every request")
    add("--churn-bump", type=int, default=0, help="conversations bumped before every request")
    add("--page-sizes", type=_page_sizes, default={}, help="PAGE:SIZE,... pages served short")
    add("--page-cycle", type=int, help="serve only this many pages, over and over")
    add("--echo-key", action="store_true", help="show the request's api-key in error bodies")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox until SIGINT or SIGTERM; return the exit code."""
    args = _parser().parse_args(argv)
    store = ConversationStore.generate(args.conversations, seed=args.seed, offsets=args.offsets)
    sandbox = SandboxServer(
        store,
        host=args.host,
        port=args.port,
        max_per_page=args.max_per_page,
        past_end=args.past_end,
        latency=args.latency_ms / 1000,
        fault_rate=args.fault_rate,
        fault_kinds=args.fault_kinds,
        fault_seed=args.seed,
        churn_new=args.churn_new,
        churn_bump=args.churn_bump,
        page_sizes=args.page_sizes,
        page_cycle=args.page_cycle,
        echo_key=args.echo_key,
    )
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with sandbox:
            print(
                f"Octopush sandbox: {len(store)} conversations at {sandbox.base_url} "
                f"(api-login: {sandbox.api_login}, api-key: {sandbox.api_key}); Ctrl+C to stop",
                flush=True,
            )
            stopping.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
