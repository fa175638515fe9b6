"""An mkdocs hook that puts the README into the docs site, so that the build checks its links.

The README sits at the repository root, outside ``docs/``, and links to ``docs/<page>.md``: the
paths GitHub resolves. In the site it becomes the page ``readme.md`` beside the others, so its
links lose their ``docs/`` prefix there, and the pages' links back to ``../README.md`` point at
it. Everything else about those links (the page exists, the heading exists) is mkdocs' own check.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

README = "readme.md"


def on_files(files: Files, *, config: MkDocsConfig) -> Files:
    readme = Path(config.config_file_path).parent / "README.md"
    files.append(File.generated(config, README, abs_src_path=str(readme)))
    return files


def on_page_markdown(markdown: str, *, page: Page, config: MkDocsConfig, files: Files) -> str:
    if page.file.src_uri == README:
        return markdown.replace("](docs/", "](")
    return markdown.replace("](../README.md", f"]({README}")
