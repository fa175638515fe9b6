"""``octopush-load`` as a user runs it: a real process, a real sandbox, a real DuckDB file."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import psycopg2
import pytest

from octopush_dlt.privacy import hmac_hex
from octopush_provider.sandbox import DEFAULT_API_KEY, DEFAULT_API_LOGIN
from tests.helpers import POSTGRES_URL, expected_table

PIPELINE = "octopush_conversations"


def _environment(tmp_path: Path, **variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
    env["DLT_DATA_DIR"] = str(tmp_path / "dlt")
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    return env | variables


def _sandbox_environment(tmp_path: Path, sandbox, api_key: str = DEFAULT_API_KEY) -> dict[str, str]:
    return _environment(
        tmp_path,
        SOURCES__OCTOPUSH__API_LOGIN=DEFAULT_API_LOGIN,
        SOURCES__OCTOPUSH__API_KEY=api_key,
        SOURCES__OCTOPUSH__BASE_URL=sandbox.base_url,
    )


def _load(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return _command(tmp_path, env, sys.executable, "-m", "octopush_dlt", *args)


def _command(tmp_path: Path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _table(tmp_path: Path) -> dict[str, tuple]:
    with duckdb.connect(str(tmp_path / f"{PIPELINE}.duckdb"), read_only=True) as db:
        rows = db.execute(
            "SELECT conversation_id, last_message_at, number_of_messages "
            "FROM octopush.conversations"
        ).fetchall()
    return {cid: (moment, count) for cid, moment, count in rows}


def test_demo_loads_the_sandbox_into_duckdb_and_dlt_can_inspect_it(tmp_path):
    env = _environment(tmp_path)

    result = _load(tmp_path, env, "--demo", "--demo-conversations", "300")

    assert result.returncode == 0, result.stderr
    assert "loaded into duckdb:octopush in " in result.stdout
    assert "  conversations: 300 new, 0 updated, 0 unchanged" in result.stdout
    assert "Octopush read ended (empty_page)" in result.stderr
    assert len(_table(tmp_path)) == 300
    (advertised,) = re.findall(rf"explore it: dlt pipeline {PIPELINE} (.+)", result.stdout)
    for command in advertised.split(" | "):
        shown = _command(
            tmp_path, env, str(Path(sys.executable).with_name("dlt")), "pipeline", PIPELINE, command
        )
        assert shown.returncode == 0, shown.stderr
        assert "Install dlt[hub]" not in shown.stdout + shown.stderr, command
        assert "octopush" in shown.stdout, command


def test_the_demo_loads_into_the_directory_it_runs_in(tmp_path):
    env = _environment(tmp_path)
    first, second = tmp_path / "first", tmp_path / "second"
    for directory in (first, second):
        directory.mkdir()
        result = _load(directory, env, "--demo", "--demo-conversations", "120")
        assert result.returncode == 0, result.stderr

    assert len(_table(first)) == len(_table(second)) == 120


def test_credentials_come_from_dlt_environment_variables(tmp_path, make_sandbox):
    sandbox = make_sandbox(conversations=420)

    result = _load(tmp_path, _sandbox_environment(tmp_path, sandbox), "--concurrency", "4")

    assert result.returncode == 0, result.stderr
    assert {cid: count for cid, (_, count) in _table(tmp_path).items()} == {
        cid: count for cid, (_, count) in expected_table(sandbox.store).items()
    }


def test_a_load_of_conversations_never_imports_pandas(tmp_path, make_sandbox):
    """pyarrow imports pandas (0.2 s a process) when it first converts a Python value; a load of
    conversations, first or incremental, with a hashed column, converts none on its fast path
    (octopush_dlt.arrow_values)."""
    pytest.importorskip("pandas")  # without it there is nothing to avoid
    sandbox = make_sandbox(conversations=420)
    env = _sandbox_environment(tmp_path, sandbox) | {"SOURCES__OCTOPUSH__HASH_SECRET": "pepper"}

    for run in ("first", "incremental"):
        result = _command(
            tmp_path, env, sys.executable, "-X", "importtime", "-m", "octopush_dlt",
            "--resources", "conversations", "--hash-column", "recipient_details__phone_number",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        imported = {
            line.rsplit("|", 1)[-1].strip()
            for line in result.stderr.splitlines()
            if line.startswith("import time:")
        }
        assert {"dlt", "pyarrow"} <= imported, run  # -X importtime reports the process's imports
        assert "pandas" not in imported, run
    table = _table(tmp_path)
    assert len(table) == 420
    with duckdb.connect(str(tmp_path / f"{PIPELINE}.duckdb"), read_only=True) as db:
        phones = db.execute(
            "SELECT recipient_details__phone_number FROM octopush.conversations "
            "WHERE conversation_id = ?",
            [next(iter(table))],
        ).fetchall()
    assert re.fullmatch("[0-9a-f]{64}", phones[0][0])  # hashed, by the fast path


def test_max_pages_caps_a_run_and_says_so(tmp_path, make_sandbox):
    sandbox = make_sandbox(conversations=420)

    result = _load(tmp_path, _sandbox_environment(tmp_path, sandbox), "--max-pages", "2")

    assert result.returncode == 0, result.stderr
    assert "list: 2 pages" in result.stdout
    assert "stopped: max_pages" in result.stdout
    assert "stopped at max_pages=2" in result.stderr
    assert len(_table(tmp_path)) == 200


def test_a_wrong_key_exits_with_one_clear_line_and_no_key(tmp_path, make_sandbox):
    sandbox = make_sandbox()
    env = _sandbox_environment(tmp_path, sandbox, api_key="wrong-key-3e7a")

    result = _load(tmp_path, env)

    assert result.returncode == 1
    assert "octopush-load: Octopush rejected the credentials (401)" in result.stderr
    assert "Traceback" not in result.stderr
    assert "wrong-key-3e7a" not in result.stderr + result.stdout
    assert len(sandbox.requests) == 1


def test_a_duckdb_file_named_like_the_dataset_is_refused_with_one_line(tmp_path):
    result = _load(tmp_path, _environment(tmp_path), "--demo", "--pipeline-name", "octopush")

    assert result.returncode == 1
    assert "named like the dataset 'octopush'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(  # the demo fails before it reads: its 5,000 conversations cost nothing
    ("destination", "credentials", "reason"),
    [
        ("duckdb", "/no/such/folder/warehouse.duckdb", "Cannot open file"),
        ("postgres", "postgresql://loader:pw-9d2c@127.0.0.1:1/test", "Connection refused"),
    ],
)
def test_a_destination_that_cannot_be_opened_is_named_in_one_line(
    tmp_path, destination, credentials, reason
):
    variable = f"DESTINATION__{destination.upper()}__CREDENTIALS"
    env = _environment(tmp_path, **{variable: credentials})

    result = _load(tmp_path, env, "--demo", "--destination", destination)

    assert result.returncode == 1
    assert f"octopush-load: could not open the {destination} destination: " in result.stderr
    assert reason in result.stderr
    assert variable in result.stderr
    assert "Traceback" not in result.stderr
    assert "pw-9d2c" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("flags", "variables", "message"),
    [
        (
            ("--destination", "nosuchdest"),
            {},
            "--destination 'nosuchdest' is not a dlt destination",
        ),
        (("--deletes-mode", "hard"), {}, "--deletes-mode does nothing without --detect-deletes"),
        (("--deletes-min-share", "0.5"), {}, "--deletes-min-share does nothing without --detect-"),
        ((), {"DLT_DATA_DIR": "{file}/dlt"}, "set DLT_DATA_DIR to a folder it can write"),
    ],
    ids=["unknown-destination", "deletes-mode-alone", "deletes-min-share-alone", "dlt-data-dir"],
)
def test_a_setting_it_cannot_use_is_refused_in_one_line_before_any_read(
    tmp_path, sandbox, flags, variables, message
):
    (tmp_path / "a-file").touch()
    variables = {name: value.format(file=tmp_path / "a-file") for name, value in variables.items()}
    env = _sandbox_environment(tmp_path, sandbox) | variables

    result = _load(tmp_path, env, *flags)

    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("octopush-load: ")
    assert message in line
    assert sandbox.requests == []


def test_a_postgres_url_without_a_password_loads_when_the_server_trusts_the_user(
    tmp_path, make_sandbox, postgres_dataset
):
    sandbox = make_sandbox(conversations=120)
    passwordless = re.sub(r":[^:@/]*@", "@", POSTGRES_URL)
    assert "@" in passwordless and ":postgres@" not in passwordless
    env = _sandbox_environment(tmp_path, sandbox) | {
        "DESTINATION__POSTGRES__CREDENTIALS": passwordless
    }

    result = _load(
        tmp_path, env, "--destination", "postgres", "--dataset-name", postgres_dataset, "-q"
    )

    assert result.returncode == 0, result.stderr
    with psycopg2.connect(POSTGRES_URL) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {postgres_dataset}.conversations")
        assert cursor.fetchone() == (120,)
    connection.close()


def test_it_loads_from_a_sandbox_started_with_octopush_sandbox(tmp_path):
    bin_dir = Path(sys.executable).parent
    usage = _command(tmp_path, _environment(tmp_path), str(bin_dir / "octopush-load"), "--help")
    assert "octopush-sandbox" in usage.stdout
    assert "--base-url" in usage.stdout
    server = subprocess.Popen(
        [str(bin_dir / "octopush-sandbox"), "--port", "0", "--conversations", "130"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        (base_url,) = re.findall(r"(http://\S+)", server.stdout.readline())
        env = _environment(
            tmp_path,
            SOURCES__OCTOPUSH__API_LOGIN=DEFAULT_API_LOGIN,
            SOURCES__OCTOPUSH__API_KEY=DEFAULT_API_KEY,
        )

        result = _load(tmp_path, env, "--base-url", base_url, "--resources", "conversations")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    assert result.returncode == 0, result.stderr
    assert len(_table(tmp_path)) == 130


def test_missing_credentials_say_where_to_put_them(tmp_path):
    result = _load(tmp_path, _environment(tmp_path))

    assert result.returncode != 0
    assert "SOURCES__OCTOPUSH__API_KEY" in result.stderr


def test_a_killed_run_advances_nothing_and_the_rerun_is_exact(tmp_path, make_sandbox):
    sandbox = make_sandbox(conversations=3000, latency=0.03)
    env = _sandbox_environment(tmp_path, sandbox)
    process = subprocess.Popen(
        [sys.executable, "-m", "octopush_dlt", "--concurrency", "1"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while len(sandbox.requests) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sandbox.requests) >= 10, "killed before the read began"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert len(sandbox.requests) < 30, "the run finished before it could be killed"

    sandbox.latency = 0
    sandbox.store.add_new(5)
    result = _load(tmp_path, env)

    assert result.returncode == 0, result.stderr
    assert "3005 new" in result.stdout
    table = _table(tmp_path)
    assert {cid: moment.timestamp() for cid, (moment, _) in table.items()} == {
        cid: moment.timestamp() for cid, (moment, _) in expected_table(sandbox.store).items()
    }


@pytest.mark.parametrize("flag", ["--full-refresh"])
def test_full_refresh_reloads_everything(tmp_path, make_sandbox, flag):
    sandbox = make_sandbox(conversations=250)
    env = _sandbox_environment(tmp_path, sandbox)
    assert _load(tmp_path, env).returncode == 0

    result = _load(tmp_path, env, flag)

    assert result.returncode == 0, result.stderr
    assert "250 new" in result.stdout
    assert len(_table(tmp_path)) == 250


def test_hash_drop_and_detect_deletes_flags(tmp_path, make_sandbox):
    sandbox = make_sandbox(conversations=200)
    env = _sandbox_environment(tmp_path, sandbox) | {"SOURCES__OCTOPUSH__HASH_SECRET": "cli-pepper"}
    privacy = ("--hash-column", "recipient_details__phone_number", "--drop-column", "last_message")
    assert _load(tmp_path, env, *privacy).returncode == 0
    deleted = sandbox.store.delete(row["conversation_id"] for row in sandbox.store.snapshot()[:2])

    result = _load(tmp_path, env, *privacy, "--detect-deletes")

    assert result.returncode == 0, result.stderr
    assert "deletions: 2 flagged deleted; 198 of 200 still listed" in result.stdout
    with duckdb.connect(str(tmp_path / f"{PIPELINE}.duckdb"), read_only=True) as db:
        columns = [row[0] for row in db.execute("DESCRIBE octopush.conversations").fetchall()]
        flagged = db.execute(
            "SELECT conversation_id FROM octopush.conversations "
            "WHERE _octopush_deleted_at IS NOT NULL"
        ).fetchall()
        phones = {
            row[0]
            for row in db.execute(
                "SELECT recipient_details__phone_number FROM octopush.conversations"
            ).fetchall()
        }
    assert "last_message" not in columns
    assert {cid for (cid,) in flagged} == set(deleted)
    assert (
        hmac_hex(b"cli-pepper", sandbox.store.snapshot()[0]["recipient_details"]["phone_number"])
        in phones
    )


def test_an_unknown_column_exits_with_the_columns_that_exist(tmp_path, make_sandbox):
    sandbox = make_sandbox(conversations=10)

    result = _load(tmp_path, _sandbox_environment(tmp_path, sandbox), "--drop-column", "phone")

    assert result.returncode == 1
    assert "octopush-load: no table has the column(s) phone; the columns are conversations: " in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def _tables(tmp_path: Path) -> dict[str, int]:
    with duckdb.connect(str(tmp_path / f"{PIPELINE}.duckdb"), read_only=True) as db:
        rows = db.execute(
            "SELECT table_name, estimated_size FROM duckdb_tables() "
            "WHERE schema_name = 'octopush' AND NOT starts_with(table_name, '_dlt')"
        ).fetchall()
    return dict(rows)


@pytest.mark.parametrize(
    ("flag", "tables"),
    [
        ((), {"conversations", "messages"}),
        (("--resources", "conversations"), {"conversations"}),
        (("--resources", "conversations,messages"), {"conversations", "messages"}),
    ],
)
def test_resources_choose_the_tables_loaded(tmp_path, make_sandbox, flag, tables):
    sandbox = make_sandbox(conversations=80)

    result = _load(tmp_path, _sandbox_environment(tmp_path, sandbox), *flag)

    assert result.returncode == 0, result.stderr
    assert set(_tables(tmp_path)) == tables
    assert ("messages:" in result.stdout) == ("messages" in tables)


def test_resources_without_conversations_exit_with_one_clear_line(tmp_path, make_sandbox):
    sandbox = make_sandbox(conversations=10)

    result = _load(tmp_path, _sandbox_environment(tmp_path, sandbox), "--resources", "messages")

    assert result.returncode == 1
    assert "'conversations' must be loaded with them" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("name", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_ends_the_run_in_one_line_and_the_next_run_carries_on(
    tmp_path, make_sandbox, name, code
):
    sandbox = make_sandbox(conversations=3000, latency=0.03)
    env = _sandbox_environment(tmp_path, sandbox)
    process = subprocess.Popen(
        [sys.executable, "-m", "octopush_dlt", "--concurrency", "1", "--quiet"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while len(sandbox.requests) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(getattr(signal, name))
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == code, stderr
    assert stderr.strip().splitlines() == [
        f"octopush-load: stopped by {name}: nothing this run had not committed was kept; the "
        "next run carries on from the last commit"
    ]
    sandbox.latency = 0
    result = _load(tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert "3000 new" in result.stdout


def test_rows_too_large_for_duckdbs_memory_limit_fail_in_one_line_naming_what_to_do(
    tmp_path, make_sandbox
):
    sandbox = make_sandbox(conversations=200)
    for row in sandbox.store.snapshot():
        sandbox.store.rewrite(row["conversation_id"], {"last_message": "x" * 600_000})
    env = _sandbox_environment(tmp_path, sandbox)

    result = _load(tmp_path, env, "--resources", "conversations")

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "octopush-load: the duckdb destination ran out of memory" in result.stderr
    assert "docs/scale.md#tuning-and-memory" in result.stderr
