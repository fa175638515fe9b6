"""Secrets stay out of excerpts in every spelling, wherever the body cuts them."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from octopush_dlt import octopush_source
from octopush_provider.redaction import EXCERPT_LENGTH, excerpt, redact, scrub_chain

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


ACCENTED = "clé/secrète"
# Written out by hand, not by the code under test: what a PHP or a Java JSON encoder sends back.
JSON_ECHOES = ["cl\\u00e9\\/secr\\u00e8te", "cl\\u00E9/secr\\u00E8te", "clé\\/secrète"]


@pytest.mark.parametrize("spelling", JSON_ECHOES)
def test_every_json_escape_of_the_key_is_masked(spelling):
    assert redact(f'{{"api-key": "{spelling}"}}', secrets=(ACCENTED,)) == '{"api-key": "***"}'


def test_every_error_chained_to_ours_is_scrubbed():
    inner = KeyError(f"while sending {JSON_ECHOES[0]}")
    middle = RuntimeError(f"wrapped {ACCENTED}")
    middle.__cause__ = inner
    outer = ValueError(f"ours, worded with masked parts: {ACCENTED}")
    outer.__context__ = middle

    scrub_chain(outer, secrets=(ACCENTED,))

    assert (str(middle), inner.args) == ("wrapped ***", ("while sending ***",))
    assert str(outer).endswith(ACCENTED)  # ours: a key of one letter must not mask our words


def test_a_key_echoed_in_json_never_reaches_the_error_or_the_trace_dlt_writes(
    hostile, make_pipeline
):
    body = '{"code": 1001, "message": "bad key", "request": {"api-key": "%s", "echo": "%s"}}'
    echoed = (body % (JSON_ECHOES[0], JSON_ECHOES[2])).encode()
    server = hostile(
        lambda h: (
            h.send_response(401),
            h.send_header("Content-Length", str(len(echoed))),
            h.end_headers(),
            h.wfile.write(echoed),
        )
    )
    pipeline = make_pipeline("octopush_echo")
    source = octopush_source(api_login="me@example.com", api_key=ACCENTED, base_url=server.base_url)

    with pytest.raises(PipelineStepFailed) as raised:
        pipeline.run(source)

    chain = [raised.value]
    while chain[-1].__cause__ or chain[-1].__context__:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
    assert any("bad key" in str(error) for error in chain)
    trace = Path(pipeline.working_dir, "trace.pickle").read_bytes()
    for error in chain:
        assert "cl" + "é" not in str(error) and "00e9" not in str(error), str(error)
    for spelling in [ACCENTED, *JSON_ECHOES]:
        assert spelling.encode() not in trace
    assert "secrète".encode() not in trace and b"secr\\u00e8te" not in trace
