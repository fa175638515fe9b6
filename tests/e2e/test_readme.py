"""The README's first screen works as written: its first two commands are the demo and the test
commands CI runs, and its dlt example, copied as it is, loads a whole account.

The example runs in a process of its own, in an empty folder, configured only through the
environment variables the README names (plus the sandbox's base URL), as ``octopush-load`` runs in
``tests/e2e/test_cli.py``; what it loaded is compared with the sandbox's data.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb

from octopush_provider.sandbox import SandboxServer
from tests.e2e.test_cli import _command, _sandbox_environment
from tests.helpers import README, expected_messages, expected_table, readme_code

CI = README.parent / ".ci" / "run"


def test_the_readme_opens_with_the_demo_and_the_test_command_ci_runs() -> None:
    first_block = readme_code("# airflow-provider-octopush")
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]

    assert commands == ["make demo", "make test"]
    assert CI.read_text(encoding="utf-8").splitlines()[-1] == "make test"


def test_the_readmes_dlt_example_loads_the_whole_account(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    example = readme_code("## Load with dlt")
    env = _sandbox_environment(tmp_path, sandbox, api_key=sandbox.api_key)

    done = _command(tmp_path, env, sys.executable, "-c", example)

    assert done.returncode == 0, done.stderr
    assert len(example.strip().splitlines()) <= 5
    with duckdb.connect(str(tmp_path / "octopush_conversations.duckdb"), read_only=True) as db:
        conversations = db.sql("SELECT conversation_id FROM octopush.conversations").fetchall()
        messages = db.sql("SELECT message_id FROM octopush.messages").fetchall()
    assert sorted(row[0] for row in conversations) == sorted(expected_table(sandbox.store))
    assert sorted(row[0] for row in messages) == sorted(expected_messages(sandbox.store))
