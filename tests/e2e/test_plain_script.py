"""The source as a plain script uses it: with the user's own logging and default environment."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from octopush_provider.sandbox import DEFAULT_API_KEY, DEFAULT_API_LOGIN

SCRIPT = """
import logging
import sys

import dlt

from octopush_dlt import octopush_source

logging.basicConfig(level=logging.INFO)
pipeline = dlt.pipeline(
    pipeline_name="plain_script",
    destination=dlt.destinations.duckdb("plain_script.duckdb"),
    dataset_name="octopush",
    pipelines_dir="pipelines",
)
source = octopush_source(
    api_login=sys.argv[1], api_key=sys.argv[2], base_url=sys.argv[3], max_pages=1
)
print(pipeline.run(source))
"""


def _user_environment(tmp_path: Path) -> dict[str, str]:
    """The environment a user's script starts with: none of the test suite's dlt settings."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PROVIDERS__", "SOURCES__", "DESTINATION__"))
    }
    # Kept off the machine's own Airflow home and dlt's telemetry; neither changes the outcome.
    return env | {"AIRFLOW_HOME": str(tmp_path / "airflow"), "RUNTIME__DLTHUB_TELEMETRY": "false"}


def test_a_plain_script_with_basic_config_sees_our_warnings(tmp_path, sandbox):
    (tmp_path / "load.py").write_text(SCRIPT)

    result = subprocess.run(
        [sys.executable, "load.py", DEFAULT_API_LOGIN, DEFAULT_API_KEY, sandbox.base_url],
        cwd=tmp_path,
        env=_user_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(
        r"^WARNING:octopush_(dlt|provider)[\w.]*:.*max_pages", result.stderr, re.MULTILINE
    ), result.stderr[-3000:]
