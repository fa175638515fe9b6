"""What a run may do, whoever starts it: dlt's own entry points are the contract.

A dlt user runs the source with ``pipeline.run(octopush_source())`` and dlt's idioms on it:
``with_resources``, ``add_limit``, ``write_disposition`` and ``refresh`` overrides, ``dev_mode``.
Our runner (:func:`octopush_dlt.runner.run_load`, the CLI, the Airflow operator) adds comfort
around the same call: it commits a long first load in slices and goes on until the last, checks
that the two tables agree, marks deletions after the load, and sums the run up. So everything
that decides what lands lives in the resources, which read the run as dlt hands it to them
(:func:`plan_run`):

- One run loads the whole account. A first load goes in slices only when the runner drives it
  or ``slice_conversations`` asks for it; a run that a slice ends short of the end says so.
- Selecting with ``with_resources`` is selecting with ``resources=``: messages need their
  conversations, and a resource that is not loaded moves no state.
- ``replace`` reloads everything (a table replaced by the conversations changed since the last
  run would lose the rest); ``append`` is refused, since every re-read would add a row again.
- Marking deletions happens after the load, which only the runner sees: a source built with
  ``detect_deletes`` refuses to run without it, instead of loading and marking nothing.

Each refusal is one :class:`~octopush_provider.exceptions.OctopushConfigError` raised before
anything is read, naming the option and what to use instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import dlt

from octopush_dlt.settings import MESSAGES_RESOURCE_NAME, RESOURCE_NAME
from octopush_provider.exceptions import OctopushConfigError

__all__ = ["RunPlan", "check_slice_size", "plan_run", "runner_driving", "write_disposition"]


@dataclass(frozen=True)
class _Runner:
    """What the runner driving this run asks of it."""

    slice_conversations: int | None


_RUNNER: ContextVar[_Runner | None] = ContextVar("octopush_runner", default=None)

_RUNNER_NAMES = "octopush_dlt.run_load(pipeline, source), octopush-load or the Airflow operator"


@contextmanager
def runner_driving(*, slice_conversations: int | None) -> Iterator[None]:
    """Marks the runs started inside as the runner's, slicing first loads by the given size."""
    if slice_conversations is not None:
        check_slice_size(slice_conversations)
    token = _RUNNER.set(_Runner(slice_conversations))
    try:
        yield
    finally:
        _RUNNER.reset(token)


def check_slice_size(value: Any) -> int:
    """``slice_conversations`` as a positive whole number, or a one-line error."""
    if isinstance(value, bool) or not (isinstance(value, int) and value >= 1):
        raise OctopushConfigError(f"slice_conversations must be a positive integer, got {value!r}")
    return value


def write_disposition(resource: Any) -> str:
    """The write disposition a resource has in this run, whatever form it was given in."""
    hint = resource.write_disposition
    return str(hint["disposition"] if isinstance(hint, dict) else hint)


@dataclass(frozen=True, kw_only=True)
class RunPlan:
    """How the conversations resource reads in this run."""

    with_messages: bool  # the messages resource is loaded in this run
    replace: bool  # the tables are replaced: read everything, whatever the cursor says
    slice_size: int | None  # a first load goes in slices of this many conversations
    under_runner: bool


def plan_run(*, slice_conversations: int | None, detect_deletes: bool) -> RunPlan:
    """The plan of this run, from what dlt hands the conversations resource; or a refusal.

    Call from inside the conversations resource, before it reads anything.
    """
    source = dlt.current.source()
    selected = source.selected_resources
    if RESOURCE_NAME not in selected:
        raise OctopushConfigError(
            f"with_resources({', '.join(map(repr, selected))}): messages are read for the "
            f"conversations each run reads, so select '{RESOURCE_NAME}' with them"
        )
    dispositions = {name: write_disposition(resource) for name, resource in selected.items()}
    for name, disposition in dispositions.items():
        if disposition == "append":
            raise OctopushConfigError(
                f"write_disposition 'append' for {name}: every re-read conversation would be "
                "added again; use merge (the default) or replace"
            )
    with_messages = MESSAGES_RESOURCE_NAME in selected
    replace = dispositions[RESOURCE_NAME] == "replace"
    if with_messages and (dispositions[MESSAGES_RESOURCE_NAME] == "replace") != replace:
        raise OctopushConfigError(
            "write_disposition: replace both tables or neither; messages are read only for the "
            "conversations a run reads, so one table replaced alone loses rows"
        )
    runner = _RUNNER.get()
    if detect_deletes and runner is None:
        raise OctopushConfigError(
            "detect_deletes: deletions are marked after the load, which plain pipeline.run does "
            f"not do; run the source with {_RUNNER_NAMES}"
        )
    if replace and slice_conversations is not None:
        raise OctopushConfigError(
            "slice_conversations with write_disposition 'replace': each slice would replace "
            "the one before; leave slice_conversations unset"
        )
    if slice_conversations is None and runner is not None:
        slice_conversations = runner.slice_conversations
    return RunPlan(
        with_messages=with_messages,
        replace=replace,
        slice_size=slice_conversations if with_messages and not replace else None,
        under_runner=runner is not None,
    )
