"""docs/security-model.md is what reviewers verify: every file, function and test it names must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "security-model.md"
_TICKED = re.compile(r"`([^`]+)`")
_PATH = re.compile(r"^(?:pmap|tests|bench|docs|scripts)/[\w./-]*$")


def _defines(source: str, name: str) -> bool:
    # a function, class, method or module-level name, as the doc names it ("Keyring.to_file" -> "to_file")
    leaf = re.escape(name.split(".")[-1].split("[")[0])
    return re.search(rf"^\s*(?:async\s+def|def|class)\s+{leaf}\b|^{leaf}\s*[:=]", source, re.MULTILINE) is not None


def _references() -> list[tuple[int, str, str | None]]:
    """``(line, path, name)`` for each reference in the doc's tables; ``::name`` refers to the last path named."""
    found: list[tuple[int, str, str | None]] = []
    for number, line in enumerate(DOC.read_text().splitlines(), 1):
        if not line.startswith("|"):
            continue
        current: str | None = None
        for token in _TICKED.findall(line):
            path, _, name = token.partition("::")
            if path and _PATH.match(path):
                current = path
                found.append((number, path, name.split(" ")[0] or None))
            elif not path and name and current is not None:
                found.append((number, current, name.split(" ")[0]))
    return found


def test_the_doc_names_real_files_functions_and_tests() -> None:
    refs = _references()
    assert len(refs) > 100  # the parser still reads the tables
    missing = []
    for number, path, name in refs:
        target = ROOT / path
        if not target.exists():
            missing.append(f"line {number}: {path} does not exist")
        elif name and target.is_file() and not _defines(target.read_text(), name):
            missing.append(f"line {number}: {path} defines no {name}")
    assert missing == [], "\n".join(missing)
