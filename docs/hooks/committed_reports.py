"""MkDocs hook: the committed reports (reports/<study>/) join the site, so the manual can link to them.

The reports mkdocs.yml's nav lists (`reports/<study>/README.md`) are mounted at `reports/<study>/`
with their figures and tables; a report a user made and did not add to the nav stays out, so
`make docs` passes whatever `make ablate` wrote. A page in docs/ links to a report as
`../reports/<study>/README.md`, the path that is right when the page is read on its own (a
repository browser, an editor); those links and images are rewritten to `reports/` before MkDocs
checks them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
REPORTS = "reports"


def _nav_paths(nav: object) -> Iterator[str]:
    if isinstance(nav, str):
        yield nav
    elif isinstance(nav, dict):
        for value in nav.values():
            yield from _nav_paths(value)
    elif isinstance(nav, list):
        for item in nav:
            yield from _nav_paths(item)


def on_files(files: Files, config) -> Files:
    folders = sorted({Path(p).parent for p in _nav_paths(config["nav"]) if p.startswith(f"{REPORTS}/")})
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file():
                files.append(File(path.relative_to(ROOT).as_posix(), str(ROOT), config["site_dir"],
                                  config["use_directory_urls"]))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri.startswith(f"{REPORTS}/"):
        return markdown
    return markdown.replace(f"](../{REPORTS}/", f"]({REPORTS}/")
