"""Only pmap/credentials/service.py may call the decryption primitive; the KEK providers' ``unwrap`` decrypts data
keys only (pmap/core/crypto.py's keyring, pmap/credentials/pkcs11.py's HSM)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pmap"
ALLOWED = {PACKAGE / "credentials" / "service.py", PACKAGE / "core" / "crypto.py"}
# modules whose functions of these names may decrypt a data key (never content), and nothing else in them
UNWRAPS = {PACKAGE / "credentials" / "pkcs11.py": {"unwrap"}}
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
        tree = ast.parse(path.read_text(), filename=str(path))
        if path in UNWRAPS:  # only the named functions may decrypt: what is outside them must not
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef) and node.name in UNWRAPS[path]:
                    node.body = []
        used = _uses_in(tree)
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
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name not in {"open_envelope", "unwrap"}
        and _uses_in(node) & {"open_envelope", "decrypt"}
    )
    assert wrappers == [], f"pmap/core/crypto.py functions other than open_envelope and unwrap decrypt: {wrappers}"


def test_unwrap_returns_a_key_and_is_called_only_where_data_keys_are_opened() -> None:
    # who calls a provider's unwrap: the key store (for open_envelope's data key) and rewrap (key rotation)
    callers = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                calls = {c.func.attr for c in ast.walk(node) if isinstance(c, ast.Call)
                         and isinstance(c.func, ast.Attribute) and c.func.attr == "unwrap"}
                if calls:
                    callers[f"{path.relative_to(PACKAGE)}:{node.name}"] = calls
    assert sorted(callers) == ["core/crypto.py:data_cipher", "core/crypto.py:rewrap"], callers
