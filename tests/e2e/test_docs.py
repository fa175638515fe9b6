"""The docs build (`make docs`): the README and the pages of docs/ build clean, and a broken link
fails the build, whether it points at a page that does not exist or at a heading a page lacks.

Each build runs mkdocs as `make docs` does, on the repository's tree or on a copy of it with one
link broken on purpose.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
        check=False,
    )


def copy_of_the_docs(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(REPO / "mkdocs.yml", root)
    shutil.copy(REPO / "README.md", root)
    shutil.copytree(REPO / "docs", root / "docs")
    return root


def test_the_readme_and_every_page_build_without_a_warning(tmp_path: Path) -> None:
    done = build(REPO, tmp_path / "site")

    assert done.returncode == 0, done.stdout
    assert "WARNING" not in done.stdout
    readme = (tmp_path / "site" / "readme" / "index.html").read_text(encoding="utf-8")
    # The README's links to docs/<page>.md land on the pages of the site.
    assert 'href="../dlt-source/"' in readme
    assert 'href="../airflow/#create-the-octopush-connection"' in readme


@pytest.mark.parametrize(
    ("page", "link", "complaint"),
    [
        ("README.md", "docs/no-such-page.md", "no-such-page.md"),
        ("README.md", "docs/scale.md#no-such-heading", "no-such-heading"),
        ("docs/airflow.md", "no-such-page.md", "no-such-page.md"),
        ("docs/airflow.md", "summary.md#no-such-heading", "no-such-heading"),
        ("docs/airflow.md", "#no-such-heading", "no-such-heading"),
    ],
)
def test_a_broken_link_fails_the_build_naming_it(
    tmp_path: Path, page: str, link: str, complaint: str
) -> None:
    root = copy_of_the_docs(tmp_path)
    with (root / page).open("a", encoding="utf-8") as file:
        file.write(f"\nSee [this]({link}).\n")

    done = build(root, tmp_path / "site")

    assert done.returncode != 0
    assert "Aborted with 1 warnings in strict mode" in done.stdout
    assert complaint in done.stdout
