"""The package as users install it: a wheel built from this checkout, in a fresh virtualenv.

The editable install the other tests use reads the folders in place, so it cannot tell whether
the wheel carries the right modules under the right names. Here uv builds the wheel and sdist,
installs the wheel (with Airflow and dlt, from uv's cache) into an empty virtualenv, and Airflow
in that virtualenv is asked what it sees.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.helpers import OCTOPUSH_HOOK_ENTRY

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).with_name("uv")
INSTALLED_NAMES = {"octopush_provider", "octopush_dlt"}
TIMEOUT = 300
NOT_SOURCES = (".git", ".venv", "build", "*.egg-info", "*_cache", "__pycache__", "*.duckdb*")


def run(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(arg) for arg in args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"{args}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The wheel and the sdist, built the way a release is, from a copy of the checkout (setuptools
    writes its egg-info next to the sources, where the editable install reads it)."""
    source = tmp_path_factory.mktemp("source") / "airflow-provider-octopush"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    dist = tmp_path_factory.mktemp("dist")
    run(UV, "build", "--quiet", "--out-dir", dist, source)
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    return wheel, sdist


@pytest.fixture(scope="module")
def venv(built: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv holding the wheel and what it depends on, nothing else."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    run(UV, "venv", "--quiet", "--python", sys.executable, root)
    run(UV, "pip", "install", "--quiet", "--python", root / "bin" / "python", built[0])
    return root


def airflow_env(home: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AIRFLOW", "PYTHONPATH", "VIRTUAL_ENV"))
    }
    env["AIRFLOW_HOME"] = str(home)
    return env


def test_the_wheel_holds_only_the_two_packages_under_their_installed_names(
    built: tuple[Path, Path],
) -> None:
    wheel, sdist = built
    with zipfile.ZipFile(wheel) as archive:
        top_level = {name.split("/")[0] for name in archive.namelist()}
        metadata = archive.read(
            next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        ).decode()

    assert top_level - INSTALLED_NAMES == {"airflow_provider_octopush-0.1.0.dist-info"}
    assert "Classifier: Framework :: Apache Airflow :: Provider" in metadata
    assert "Project-URL: Documentation, https://github.com/octopush-connector/" in metadata
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[-1] for name in archive.getnames()}
    assert {"pyproject.toml", "README.md", "CHANGELOG.md", "provider/__init__.py"} <= names


def test_airflow_in_a_fresh_virtualenv_lists_the_provider_and_its_connection_type(
    venv: Path, tmp_path: Path
) -> None:
    airflow = venv / "bin" / "airflow"
    env = airflow_env(tmp_path)

    providers = json.loads(run(airflow, "providers", "list", "--output", "json", env=env))
    hooks = json.loads(run(airflow, "providers", "hooks", "--output", "json", env=env))

    assert "airflow-provider-octopush" in {provider["package_name"] for provider in providers}
    assert OCTOPUSH_HOOK_ENTRY in hooks


def test_the_example_dags_import_from_the_wheel_and_nothing_else_is_installed(
    venv: Path, tmp_path: Path
) -> None:
    # Run outside the checkout, so that only the virtualenv can answer the imports.
    probe = """
import importlib.util, json, runpy, sys
for path in sys.argv[1:]:
    runpy.run_path(path)
print(json.dumps({
    name: getattr(importlib.util.find_spec(name), "origin", None)
    for name in ("octopush_provider", "octopush_dlt", "provider", "dlt_source", "tests", "dags")
}))
"""
    dags = sorted(str(path) for path in (REPO / "dags").glob("*.py"))

    found = json.loads(
        run(venv / "bin" / "python", "-c", probe, *dags, env=airflow_env(tmp_path), cwd=tmp_path)
        .strip()
        .splitlines()[-1]
    )

    for name in INSTALLED_NAMES:
        assert found[name].startswith(str(venv)), found
    assert {name: found[name] for name in ("provider", "dlt_source", "tests", "dags")} == {
        "provider": None,
        "dlt_source": None,
        "tests": None,
        "dags": None,
    }
