"""Only pmap/credentials/service.py may call the decryption primitive."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pmap"
ALLOWED = {PACKAGE / "credentials" / "service.py", PACKAGE / "core" / "crypto.py"}
PRIMITIVES = {"open_envelope", "AESGCM", "decrypt"}


def _uses(path: Path) -> set[str]:
    return _uses_in(ast.parse(path.read_text(), filename=str(path)))


def _uses_in(tree: ast.AST) -> set[str]:
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


def test_crypto_wraps_the_primitive_in_no_other_function() -> None:
    # crypto.py is allowed to hold the primitive; a helper there calling it would let any module decrypt unseen
    tree = ast.parse((PACKAGE / "core" / "crypto.py").read_text())
    wrappers = sorted(
        node.name for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name != "open_envelope"
        and _uses_in(node) & {"open_envelope", "decrypt"}
    )
    assert wrappers == [], f"pmap/core/crypto.py functions other than open_envelope decrypt: {wrappers}"
