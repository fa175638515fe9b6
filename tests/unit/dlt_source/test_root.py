"""``octopush_dlt`` itself: what a user imports from the package root."""

from __future__ import annotations

import subprocess
import sys

import octopush_dlt
from octopush_provider.exceptions import OctopushError


def test_the_root_exports_the_source_the_runner_and_the_errors_of_a_load():
    assert set(octopush_dlt.__all__) == {
        "octopush_source",
        "run_load",
        "RESOURCES",
        "OctopushError",
        "OctopushConfigError",
        "OctopushPrivacyError",
        "OctopushDeletionError",
    }
    assert octopush_dlt.run_load.__module__ == "octopush_dlt.runner"


def test_one_except_of_the_root_catches_the_exported_errors():
    errors = [
        getattr(octopush_dlt, name) for name in octopush_dlt.__all__ if name.endswith("Error")
    ]

    assert len(errors) == 4
    assert all(issubclass(error, OctopushError) for error in errors)


def test_importing_the_root_outside_airflow_leaves_airflow_unimported():
    probe = "import sys, octopush_dlt; print('airflow' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )

    assert result.stdout.strip() == "False"
