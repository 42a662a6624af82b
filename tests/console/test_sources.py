"""The console's own sources keep the rules the Content-Security-Policy and the text-only DOM rely on: no HTML
sink, no string evaluated as code, no inline script or style, no storage of anything, no template escape hatch."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pmap.console.assets import STATIC_DIR, TEMPLATES_DIR

SCRIPTS = sorted(STATIC_DIR.rglob("*.js"))
TEMPLATES = sorted(TEMPLATES_DIR.glob("*.html"))

#: what would parse data as HTML or code, set an inline style, or keep something in the browser
FORBIDDEN_IN_SCRIPTS = {
    "an HTML sink": re.compile(r"\.(innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write|createContextualFragment"
                               r"|DOMParser"),
    "code from a string": re.compile(r"\beval\s*\(|new\s+Function\b|set(Timeout|Interval)\s*\(\s*[\"'`]"),
    "an inline style": re.compile(r"setAttribute\(\s*[\"']style|\.style\.|[\"']style[\"']\s*:|[{,]\s*style\s*:"),
    "browser storage": re.compile(r"localStorage|sessionStorage|indexedDB|document\.cookie"),
    "a console log": re.compile(r"console\.(log|debug|info)\s*\("),
}
FORBIDDEN_IN_TEMPLATES = {
    "an unescaped value": re.compile(r"\|\s*safe\b|autoescape\s+false|Markup\("),
    "an inline script": re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),
    "an inline style": re.compile(r"\sstyle\s*=|<style\b", re.I),
    "an inline handler": re.compile(r"\son[a-z]+\s*=", re.I),
    "a third-party origin": re.compile(r"(src|href)\s*=\s*\"(https?:)?//", re.I),
}


def test_there_are_sources_to_check() -> None:
    assert len(SCRIPTS) >= 10 and len(TEMPLATES) >= 4


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(STATIC_DIR)))
def test_scripts_use_no_html_sink_code_string_inline_style_or_storage(path: Path) -> None:
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("//")]
    for what, pattern in FORBIDDEN_IN_SCRIPTS.items():
        found = [line.strip() for line in lines if pattern.search(line)]
        assert not found, f"{path.name} uses {what}: {found[:3]}"


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_templates_escape_and_load_nothing_inline_or_foreign(path: Path) -> None:
    text = path.read_text()
    for what, pattern in FORBIDDEN_IN_TEMPLATES.items():
        assert not pattern.search(text), f"{path.name} has {what}"


def test_every_console_file_is_package_data() -> None:
    """A wheel carries every template, style and script (a missing glob once left detail/ out)."""
    import fnmatch
    import tomllib

    root = STATIC_DIR.parent
    globs = tomllib.loads((root.parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "pmap.console"]
    files = [p.relative_to(root).as_posix() for p in [*TEMPLATES, *STATIC_DIR.rglob("*")] if p.is_file()]
    missing = [f for f in files if not any(fnmatch.fnmatchcase(f, g) and f.count("/") == g.count("/") for g in globs)]
    assert files and missing == []
