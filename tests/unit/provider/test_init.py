"""The package root: what a user imports, without Airflow or dlt coming along."""

from __future__ import annotations

import subprocess
import sys

import octopush_provider
from octopush_provider import client, exceptions


def test_the_root_re_exports_the_client_and_the_core_errors():
    assert octopush_provider.OctopushClient is client.OctopushClient
    for name in ("OctopushError", "OctopushAuthError", "OctopushConfigError"):
        assert getattr(octopush_provider, name) is getattr(exceptions, name)
    assert set(octopush_provider.__all__) <= set(dir(octopush_provider))


def test_importing_the_root_imports_neither_airflow_nor_dlt():
    probe = (
        "import sys, octopush_provider; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'airflow', 'dlt'}))"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout

    assert found.strip() == "[]"
