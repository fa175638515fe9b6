"""The command line's reading of an error chain."""

from __future__ import annotations

from octopush_dlt.cli import _behind


def test_an_error_chain_that_loops_back_on_itself_ends():
    outer, inner = RuntimeError("outer"), ValueError("inner")
    outer.__cause__, inner.__context__ = inner, outer  # raise ... from ..., inside a handler

    assert _behind(outer, ValueError) is inner
    assert _behind(outer, KeyError) is None
