"""Secrets stay out of excerpts in every spelling, wherever the body cuts them."""

from __future__ import annotations

from urllib.parse import quote, quote_plus

import pytest

from octopush_provider.redaction import EXCERPT_LENGTH, excerpt, redact

KEY = "k3y/with+special=chars&more"


@pytest.mark.parametrize(
    "spelling",
    [KEY, quote(KEY), quote(KEY, safe=""), quote_plus(KEY), quote(KEY, safe="").lower()],
)
def test_every_spelling_of_the_key_is_masked(spelling):
    assert redact(f"Location: /list?api-key={spelling}&page=2", secrets=(KEY,)) == (
        "Location: /list?api-key=***&page=2"
    )


def test_a_key_cut_by_the_end_of_the_excerpt_never_shows_in_part():
    # Whitespace is collapsed: a key deep in a body of blanks comes first in the excerpt.
    for position in range(3 * EXCERPT_LENGTH, 5 * EXCERPT_LENGTH):
        body = b" " * position + KEY.encode() + b"b" * 10_000

        shown = excerpt(body, secrets=(KEY,))

        assert "k3y" not in shown and "chars" not in shown and "more" not in shown, position


def test_only_the_start_of_a_huge_body_is_shown():
    shown = excerpt(b"<html>" + b"x" * 50_000_000, secrets=(KEY,))

    assert shown.startswith("<html>xxx")
    assert shown.endswith("... (of 50000006 bytes)")
    assert len(shown) < EXCERPT_LENGTH + 30
