"""AES-256-GCM envelopes: content under a data key of its own, the data key wrapped by a key-encryption key.

An envelope (version 2) is a small JSON object::

    {"v": 2, "kp": "<provider>", "kek": "<KEK id>", "dk": <b64 wrapped data key>, "n": <b64 nonce>,
     "ct": <b64 ciphertext+tag>}

The content is sealed with a fresh 256-bit data key; the data key is wrapped by a key-encryption key (KEK)
that a :class:`KekProvider` holds: the keyring (``kp`` ``keyring``, ``kek`` a key id) or a PKCS#11 token
(``kp`` ``pkcs11``, ``kek`` a key label; :mod:`pmap.credentials.pkcs11`), where the KEK never leaves the
HSM. The envelope names its KEK, so a process that can reach a KEK opens every envelope under it whichever
KEK it seals new envelopes with (:class:`KeyStore`). Version 1 envelopes (``{"v": 1, "kid": ...}``, the
content sealed directly under a keyring key) still open; ``pmapctl keys rotate`` moves them to version 2.

The associated data binds an envelope to one row and column (``pmap:v1:<table>.<column>:`` followed by the
row's 16 UUID bytes), so a ciphertext copied into another row or column fails to open; the wrapped data key
is bound to the same associated data and to its KEK. :func:`open_envelope` is the decryption primitive; only
:mod:`pmap.credentials.service` may call it (a test enforces this). Unwrapping a data key (``unwrap``)
yields a key, never content.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pmap.core.errors import ConfigurationError, CryptoError

log = logging.getLogger("pmap.crypto")

AAD_VERSION = 1  # the row and column binding; unchanged by envelope version 2
LEGACY_ENVELOPE = 1  # content sealed directly under a keyring key
ENVELOPE_VERSION = 2  # content under a data key, the data key wrapped by a KEK
KEY_BYTES = 32
NONCE_BYTES = 12
DATA_KEY_CACHE_SIZE = 4096  # unwrapped data keys held at most (each a cipher object of a few hundred bytes)


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

    name: ClassVar[str] = "keyring"  # as a KEK provider (KekProvider): ``kp`` of the envelopes it wraps

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

    def wrap(self, kek_id: str, data_key: bytes, aad: bytes) -> bytes:
        """A data key wrapped (AES-256-GCM) under keyring key ``kek_id``: nonce followed by ciphertext and tag."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self.aead(kek_id).encrypt(nonce, data_key, aad)

    def unwrap(self, kek_id: str, wrapped: bytes, aad: bytes) -> bytes:
        """The data key :meth:`wrap` wrapped; CryptoError when it does not open."""
        cipher = self.aead(kek_id)
        try:
            return cipher.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], aad)
        except (InvalidTag, ValueError):
            raise CryptoError("the data key failed authentication (wrong key-encryption key, or tampered)") from None

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


class KekProvider(Protocol):
    """Where key-encryption keys live, and wrapping data keys under them (extension point).

    ``name`` is stored in every envelope it wraps (``kp``) beside the KEK's id (``kek``), so the provider and
    the KEK are found again from the envelope alone. ``wrap`` and ``unwrap`` are authenticated: a data key
    wrapped with ``aad`` opens only with the same ``aad`` under the same KEK; ``unwrap`` raises
    :class:`~pmap.core.errors.CryptoError` when it does not open (unknown KEK, wrong key, tampered, the
    device refused). Both are thread-safe and do their I/O on first use, never in the constructor.
    Implementations: :class:`Keyring` and :class:`pmap.credentials.pkcs11.Pkcs11Provider`.
    """

    name: ClassVar[str]

    def wrap(self, kek_id: str, data_key: bytes, aad: bytes) -> bytes: ...

    def unwrap(self, kek_id: str, wrapped: bytes, aad: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True)
class KekRef:
    """One key-encryption key: its provider's name and its id there (``pkcs11:pmap-kek-2``)."""

    provider: str
    id: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> KekRef:
        """``provider:id`` back into a reference; a bare id (an older canary's) is a keyring key id."""
        provider, sep, kek_id = text.partition(":")
        if sep and provider.isalnum() and provider.islower():
            return cls(provider, kek_id)
        return cls(Keyring.name, text)


class _DataKeyCache:
    """Unwrapped data keys (as cipher objects) for ``seconds`` at most, ``size`` at most, least recently used
    out first: a resolve in a hot loop asks the HSM once per data key and period, not once per call."""

    def __init__(self, seconds: float, size: int, clock: Callable[[], float]) -> None:
        self._seconds = seconds
        self._size = size
        self._clock = clock
        self._items: OrderedDict[tuple[KekRef, bytes, bytes], tuple[AESGCM, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[KekRef, bytes, bytes]) -> AESGCM | None:
        if self._seconds <= 0:
            return None
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[1] <= self._clock():
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: tuple[KekRef, bytes, bytes], cipher: AESGCM) -> None:
        if self._seconds <= 0:
            return
        with self._lock:
            self._items[key] = (cipher, self._clock() + self._seconds)
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class DataKeyObserver(Protocol):
    """Told where each data key an open needed came from (the app's metrics: ``pmap_data_keys_total``)."""

    def data_key(self, provider: str, source: str) -> None:
        """``source``: ``cache``, ``unwrapped`` (the provider was asked: an HSM call) or ``failed``."""


class KeyStore:
    """The key-encryption keys a process can use: new envelopes under ``primary``; any envelope opens whose KEK
    one of ``providers`` holds (version 1 envelopes: the keyring's keys). Unwrapped data keys are cached for
    ``cache_seconds`` (0: never), at most :data:`DATA_KEY_CACHE_SIZE` of them. ``observer`` (set once the app's
    metrics exist) hears where each data key came from."""

    observer: DataKeyObserver | None = None

    def __init__(self, primary: KekRef, providers: Mapping[str, KekProvider], *, cache_seconds: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if primary.provider not in providers:
            raise ConfigurationError(f"no key provider {primary.provider!r} for the primary key {primary}")
        self.configured = primary  # the KEK this process was configured to seal under
        self.providers = dict(providers)
        self._cache = _DataKeyCache(cache_seconds, DATA_KEY_CACHE_SIZE, clock)
        self._clock = clock
        self._announced: Callable[[], KekRef | None] | None = None
        self._every = 0.0
        self._next_read = 0.0
        self._following: KekRef | None = None  # the KEK the last rotation named, which this store holds
        self._refused: KekRef | None = None  # the last named KEK this store does not hold (said once)
        self._lock = threading.Lock()

    @property
    def primary(self) -> KekRef:
        """The KEK new envelopes use: the one the last key rotation named, once this process has read it (every
        ``every`` seconds of :meth:`follow`) and when it holds that key; else the configured one. Read it once per
        envelope: it may change between two reads."""
        if self._announced is not None and self._clock() >= self._next_read:
            self._refresh()
        return self._following or self.configured

    def follow(self, announced: Callable[[], KekRef | None] | None, every: float = 10.0) -> None:
        """Seal under the KEK ``announced()`` names (the last key rotation's target; None: none named), read again
        every ``every`` seconds; ``announced`` raises CryptoError when it cannot tell (the last answer then
        stands). ``None`` stops following: the configured KEK alone (a rotating process)."""
        with self._lock:
            self._announced, self._every, self._next_read, self._following = announced, every, 0.0, None

    def _refresh(self) -> None:
        if not self._lock.acquire(blocking=False):
            return  # another thread is reading it: seal under the KEK known now rather than wait on the database
        try:
            self._read_announced()
        finally:
            self._lock.release()

    def _read_announced(self) -> None:
        """Read the announced KEK (the caller holds the lock) and follow it when this store holds it."""
        announced = self._announced
        if announced is None or self._clock() < self._next_read:
            return
        self._next_read = self._clock() + self._every
        try:
            named = announced()
        except CryptoError as exc:
            log.warning("could not read which key-encryption key the last rotation named (%s); new envelopes "
                        "stay under %s", exc.message, self._following or self.configured)
            return
        if named is None or named == self.configured:
            self._following = None
        elif named != self._following:
            if self._holds(named):
                log.info("new envelopes are sealed under %s, the key-encryption key the last rotation named",
                         named)
                self._following = named
            else:
                if named != self._refused:
                    log.warning("the last key rotation named %s, which this process does not hold; new envelopes "
                                "stay under %s (give it that key, or rotate again)", named, self.configured)
                self._refused, self._following = named, None

    def _holds(self, ref: KekRef) -> bool:
        """Whether a data key wraps under ``ref`` here (with an HSM: one wrap inside the token)."""
        provider = self.providers.get(ref.provider)
        if provider is None:
            return False
        try:
            provider.wrap(ref.id, secrets.token_bytes(KEY_BYTES), _wrap_aad(ref, b"pmap:kek-probe"))
        except CryptoError:
            return False
        return True

    @classmethod
    def of(cls, keyring: Keyring, *, cache_seconds: float = 60.0) -> KeyStore:
        """A store of one keyring: its primary key is the primary KEK."""
        return cls(KekRef(Keyring.name, keyring.primary), {Keyring.name: keyring}, cache_seconds=cache_seconds)

    @property
    def keyring(self) -> Keyring | None:
        """The keyring provider, when configured (it alone opens version 1 envelopes)."""
        provider = self.providers.get(Keyring.name)
        return provider if isinstance(provider, Keyring) else None

    def provider(self, ref: KekRef) -> KekProvider:
        provider = self.providers.get(ref.provider)
        if provider is None:
            raise CryptoError(f"the envelope's key-encryption key {ref} is from a provider this process is not "
                              "configured with")
        return provider

    def forget_data_keys(self) -> None:
        """Drop every cached data key (tests, and a process told its keys changed)."""
        self._cache.clear()

    def close(self) -> None:
        """Drop the cached data keys and close the providers' sessions (those that keep one: an HSM's)."""
        self._cache.clear()
        for provider in self.providers.values():
            close = getattr(provider, "close", None)
            if callable(close):
                close()

    def data_cipher(self, ref: KekRef, wrapped: bytes, aad: bytes) -> AESGCM:
        """The cipher of the data key ``wrapped`` under ``ref`` (cached; the provider unwraps on a miss)."""
        key = (ref, wrapped, aad)
        cipher = self._cache.get(key)
        if cipher is not None:
            self._observe(ref, "cache")
            return cipher
        try:
            data_key = self.provider(ref).unwrap(ref.id, wrapped, _wrap_aad(ref, aad))
            if len(data_key) != KEY_BYTES:
                raise CryptoError("the unwrapped data key has the wrong length")
        except CryptoError:
            self._observe(ref, "failed")
            raise
        self._observe(ref, "unwrapped")
        cipher = AESGCM(data_key)
        self._cache.put(key, cipher)
        return cipher

    def _observe(self, ref: KekRef, source: str) -> None:
        if self.observer is not None:
            self.observer.data_key(ref.provider, source)

    def wrap(self, data_key: bytes, aad: bytes, kek: KekRef | None = None) -> tuple[KekRef, bytes]:
        """``data_key`` wrapped under ``kek`` (default: the primary KEK, read once: the envelope must name the key
        it was wrapped under), bound to ``aad``; and that KEK."""
        kek = kek or self.primary
        return kek, self.provider(kek).wrap(kek.id, data_key, _wrap_aad(kek, aad))


def _wrap_aad(ref: KekRef, aad: bytes) -> bytes:
    """What a wrapped data key is bound to: its KEK and its envelope's row and column."""
    return b"pmap:data-key:v2:" + str(ref).encode() + b"|" + aad


def associated_data(table: str, column: str, row_id: str) -> bytes:
    """The binding of an envelope to one row and column."""
    return f"pmap:v{AAD_VERSION}:{table}.{column}:{row_id}".encode()


def aad_prefix(table: str, column: str) -> bytes:
    """The constant part of the associated data of one column; the row's 16 UUID bytes follow it."""
    return f"pmap:v{AAD_VERSION}:{table}.{column}:".encode()


def seal(keys: KeyStore, plaintext: bytes, aad: bytes, kek: KekRef | None = None) -> dict[str, Any]:
    """Encrypt ``plaintext`` under a fresh data key wrapped by ``kek`` (default: the primary KEK), bound to ``aad``;
    the envelope."""
    data_key = secrets.token_bytes(KEY_BYTES)
    kek, wrapped = keys.wrap(data_key, aad, kek)
    nonce = os.urandom(NONCE_BYTES)
    ct = AESGCM(data_key).encrypt(nonce, plaintext, aad)
    return {"v": ENVELOPE_VERSION, "kp": kek.provider, "kek": kek.id, "dk": _b64(wrapped), "n": _b64(nonce),
            "ct": _b64(ct)}


def envelope_kek(envelope: Any) -> tuple[int, KekRef]:
    """An envelope's version and the key that guards it (a version 1 envelope's keyring key); CryptoError when
    it is malformed."""
    try:
        if envelope["v"] == LEGACY_ENVELOPE:
            return LEGACY_ENVELOPE, KekRef(Keyring.name, str(envelope["kid"]))
        if envelope["v"] == ENVELOPE_VERSION:
            return ENVELOPE_VERSION, KekRef(str(envelope["kp"]), str(envelope["kek"]))
    except (KeyError, TypeError):
        raise CryptoError("malformed credential envelope") from None
    raise CryptoError("unsupported credential envelope version")


def rewrap(keys: KeyStore, envelope: Any, aad: bytes) -> dict[str, Any]:
    """A version 2 envelope with its data key unwrapped from its KEK and wrapped again under the primary; the
    content is not touched (nonce and ciphertext stay), so nothing but a key is ever in the clear here."""
    version, ref = envelope_kek(envelope)
    if version != ENVELOPE_VERSION:
        raise CryptoError("a version 1 envelope has no data key to re-wrap: it must be re-sealed")
    try:
        wrapped = _unb64(envelope["dk"])
    except (KeyError, TypeError, binascii.Error, ValueError):
        raise CryptoError("malformed credential envelope") from None
    data_key = keys.provider(ref).unwrap(ref.id, wrapped, _wrap_aad(ref, aad))
    kek, rewrapped = keys.wrap(data_key, aad)
    return {**envelope, "kp": kek.provider, "kek": kek.id, "dk": _b64(rewrapped)}


def open_envelope(keys: KeyStore, envelope: Any, aad: bytes) -> bytes:
    """Decrypt an envelope bound to ``aad``. The one decryption primitive: see the module docstring."""
    version, ref = envelope_kek(envelope)
    try:
        nonce = _unb64(envelope["n"])
        ct = _unb64(envelope["ct"])
        if version == LEGACY_ENVELOPE:
            keyring = keys.keyring
            if keyring is None:
                raise CryptoError(f"the envelope is sealed directly under keyring key {ref.id!r}, and this process "
                                  "has no keyring")
            cipher = keyring.aead(ref.id)
        else:
            cipher = keys.data_cipher(ref, _unb64(envelope["dk"]), aad)
    except (KeyError, TypeError, binascii.Error, ValueError):
        raise CryptoError("malformed credential envelope") from None
    if len(nonce) != NONCE_BYTES:
        raise CryptoError("malformed credential envelope")
    try:
        return cipher.decrypt(nonce, ct, aad)
    except InvalidTag:
        raise CryptoError("credential envelope failed authentication (wrong key, row or column, or tampered)") from None
