"""AES-256-GCM envelopes under a keyring of versioned platform keys.

An envelope is a small JSON object ``{"v": 1, "kid": ..., "n": <b64 nonce>, "ct": <b64 ciphertext+tag>}``.
Its associated data binds it to one row and column (``pmap:v1:<table>.<column>:`` followed by the row's
16 UUID bytes), so a
ciphertext copied into another row or column fails to open. :func:`open_envelope` is the decryption
primitive; only :mod:`pmap.credentials.service` may call it (a test enforces this).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pmap.core.errors import ConfigurationError, CryptoError

ENVELOPE_VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return binascii.a2b_base64(text, strict_mode=True)


def decode_key(material: str, *, source: str) -> bytes:
    """A 256-bit key from base64 (standard or URL-safe); anything shorter or malformed is refused."""
    text = material.strip()
    try:
        altchars = b"-_" if ("-" in text or "_" in text) else None
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{source}: the platform key is not valid base64") from None
    if len(raw) < KEY_BYTES:
        raise ConfigurationError(
            f"{source}: the platform key is {len(raw) * 8} bits; AES-256 needs {KEY_BYTES * 8} bits "
            "(generate one with `pmapctl keys generate`)"
        )
    if len(raw) > KEY_BYTES:
        raise ConfigurationError(f"{source}: the platform key must be exactly {KEY_BYTES} bytes")
    if len(set(raw)) < 8:
        raise ConfigurationError(f"{source}: the platform key has too little entropy")
    return raw


def generate_key() -> str:
    """A fresh random 256-bit key, base64 encoded."""
    return _b64(secrets.token_bytes(KEY_BYTES))


@dataclass(frozen=True, slots=True)
class Keyring:
    """Versioned keys (``kid -> 32 bytes``) with one primary used to seal new envelopes."""

    keys: dict[str, bytes]
    primary: str

    _ciphers: dict[str, AESGCM] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.primary not in self.keys:
            raise ConfigurationError("keyring: the primary key id is not in the keyring")
        # one cipher object per key, built once: constructing AESGCM costs more than a decrypt
        self._ciphers.update({kid: AESGCM(key) for kid, key in self.keys.items()})

    def aead(self, kid: str) -> AESGCM:
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise CryptoError(f"no key with id {kid!r} in the keyring")
        return cipher

    @classmethod
    def single(cls, key: bytes, kid: str = "k1") -> Keyring:
        return cls(keys={kid: key}, primary=kid)

    @classmethod
    def from_file(cls, path: Path) -> Keyring:
        """Read a keyring file: ``{"primary": "k2", "keys": {"k1": "<b64>", "k2": "<b64>"}}``."""
        try:
            doc = json.loads(path.read_text())
            keys = {str(k): decode_key(v, source=f"{path}:{k}") for k, v in doc["keys"].items()}
            return cls(keys=keys, primary=str(doc["primary"]))
        except ConfigurationError:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigurationError(f"keyring file {path} is unreadable or malformed: {type(exc).__name__}") from None

    def to_file(self, path: Path) -> None:
        """Write the keyring with mode 0600 (created so; never world-readable, even briefly)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"primary": self.primary, "keys": {k: _b64(v) for k, v in self.keys.items()}}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh)


def associated_data(table: str, column: str, row_id: str) -> bytes:
    """The binding of an envelope to one row and column."""
    return f"pmap:v{ENVELOPE_VERSION}:{table}.{column}:{row_id}".encode()


def aad_prefix(table: str, column: str) -> bytes:
    """The constant part of the associated data of one column; the row's 16 UUID bytes follow it."""
    return f"pmap:v{ENVELOPE_VERSION}:{table}.{column}:".encode()


def seal(keyring: Keyring, plaintext: bytes, aad: bytes) -> dict[str, Any]:
    """Encrypt ``plaintext`` under the primary key, bound to ``aad``; returns the envelope."""
    nonce = os.urandom(NONCE_BYTES)
    ct = keyring.aead(keyring.primary).encrypt(nonce, plaintext, aad)
    return {"v": ENVELOPE_VERSION, "kid": keyring.primary, "n": _b64(nonce), "ct": _b64(ct)}


def open_envelope(keyring: Keyring, envelope: Any, aad: bytes) -> bytes:
    """Decrypt an envelope bound to ``aad``. The one decryption primitive: see the module docstring."""
    try:
        if envelope["v"] != ENVELOPE_VERSION:
            raise CryptoError("unsupported credential envelope version")
        nonce = _unb64(envelope["n"])
        ct = _unb64(envelope["ct"])
        cipher = keyring.aead(envelope["kid"])
    except (KeyError, TypeError, binascii.Error, ValueError):
        raise CryptoError("malformed credential envelope") from None
    if len(nonce) != NONCE_BYTES:
        raise CryptoError("malformed credential envelope")
    try:
        return cipher.decrypt(nonce, ct, aad)
    except InvalidTag:
        raise CryptoError("credential envelope failed authentication (wrong key, row or column, or tampered)") from None
