"""Only pmap/credentials/service.py may call the decryption primitive."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pmap"
ALLOWED = {PACKAGE / "credentials" / "service.py", PACKAGE / "core" / "crypto.py"}
PRIMITIVES = {"open_envelope", "AESGCM", "decrypt"}


def _uses(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in PRIMITIVES:
            found.add(node.id)
        elif isinstance(node, ast.Attribute) and node.attr in {"open_envelope", "AESGCM"}:
            found.add(node.attr)
        elif isinstance(node, ast.Attribute) and node.attr == "decrypt":
            found.add("decrypt")
        elif isinstance(node, ast.ImportFrom) and node.module and "crypto" in node.module:
            found |= {a.name for a in node.names if a.name in PRIMITIVES}
    return found


def test_no_other_module_decrypts() -> None:
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        if path in ALLOWED:
            continue
        used = _uses(path)
        if used:
            offenders[str(path.relative_to(PACKAGE))] = sorted(used)
    assert offenders == {}, f"only pmap/credentials/service.py may decrypt: {offenders}"


def test_the_detector_sees_a_call() -> None:
    sample = PACKAGE.parent / "tests" / "security" / "_probe_tmp.py"
    sample.write_text("from pmap.core.crypto import open_envelope\nopen_envelope(None, None, b'')\n")
    try:
        assert "open_envelope" in _uses(sample)
    finally:
        sample.unlink()
