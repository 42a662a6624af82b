"""The key-encryption key in an HSM: a KEK provider over any PKCS#11 module (python-pkcs11).

Data keys are wrapped and unwrapped inside the token with ``CKM_AES_GCM`` under an AES-256 secret key found by
its label (``CKA_LABEL``); the key never leaves the device. An envelope names the label that wrapped its data
key, so a process opens envelopes under any key of the token, and a new ``PMAP_PKCS11_KEY_LABEL`` (the key new
envelopes use) needs no restart of the processes still sealing under the old one.

A PKCS#11 session does not survive a fork (uvicorn and Celery worker processes), so each process opens its
own on first use: the library is initialized again in a forked child, and the session, its login and the
key handles are the opening process's alone. A session the device dropped (token removed, HSM restarted) is
opened again once before an operation is given up. PKCS#11 sessions are not for concurrent use, so one lock
serializes the operations of a process (each takes tens of microseconds on SoftHSM2; unwrapped data keys are
cached by :class:`pmap.core.crypto.KeyStore`).

The PIN is read from a file (``PMAP_PKCS11_PIN_FILE``) when the session opens and kept only by the library;
it is never logged and never part of an error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import Any, ClassVar

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.mechanisms import GCMParams

from pmap.core.crypto import NONCE_BYTES
from pmap.core.errors import ConfigurationError, CryptoError
from pmap.core.files import open_to_others

log = logging.getLogger("pmap.credentials.pkcs11")

TAG_BITS = 128
# errors after which the session is worth opening again (the device or its session went away)
_SESSION_LOST = (p11.SessionHandleInvalid, p11.SessionClosed, p11.DeviceRemoved, p11.TokenNotPresent,
                 p11.DeviceError, p11.ObjectHandleInvalid, p11.UserNotLoggedIn)
_initialized_in: dict[str, int] = {}  # module path -> the pid that initialized the library in this memory


class Pkcs11Provider:
    """KEKs in one PKCS#11 token, by label (the ``pkcs11`` provider of :class:`pmap.core.crypto.KeyStore`)."""

    name: ClassVar[str] = "pkcs11"

    def __init__(self, module: Path, token_label: str, pin_file: Path, *, strict_pin_file: bool = False) -> None:
        self.module = module
        self.token_label = token_label
        self._pin_file = pin_file
        self._strict_pin_file = strict_pin_file  # production: a PIN file others can read is refused
        self._lock = threading.RLock()
        self._pid: int | None = None
        self._session: Any = None
        self._keys: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"Pkcs11Provider(module={str(self.module)!r}, token_label={self.token_label!r})"

    def wrap(self, kek_id: str, data_key: bytes, aad: bytes) -> bytes:
        """``data_key`` encrypted inside the token under the key labelled ``kek_id``: IV, then ciphertext and tag."""
        iv = os.urandom(NONCE_BYTES)
        out: bytes = self._call(kek_id, lambda key: key.encrypt(
            data_key, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, aad, TAG_BITS)), "wrap")
        return iv + out

    def unwrap(self, kek_id: str, wrapped: bytes, aad: bytes) -> bytes:
        """The data key :meth:`wrap` wrapped, decrypted inside the token; CryptoError when it does not open."""
        if len(wrapped) <= NONCE_BYTES:
            raise CryptoError("malformed wrapped data key")
        iv, body = wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:]
        out: bytes = self._call(kek_id, lambda key: key.decrypt(
            body, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, aad, TAG_BITS)), "unwrap")
        return out

    def create_key(self, label: str) -> None:
        """Generate a new AES-256 KEK in the token: kept there, never extractable, for encrypt and decrypt only."""
        with self._lock:
            session = self._open()
            if self._find(session, label) is not None:
                raise ConfigurationError(
                    f"the PKCS#11 token {self.token_label!r} already holds a key labelled {label!r}")
            try:
                session.generate_key(KeyType.AES, 256, label=label, store=True, template={
                    Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False, Attribute.ENCRYPT: True, Attribute.DECRYPT: True,
                    Attribute.WRAP: False, Attribute.UNWRAP: False, Attribute.SIGN: False, Attribute.VERIFY: False,
                })
            except p11.PKCS11Error as exc:
                raise ConfigurationError(f"the PKCS#11 token refused to create the key: {type(exc).__name__}") from None

    def close(self) -> None:
        """Close this process's session (the next operation opens a new one)."""
        with self._lock:
            if self._session is not None and self._pid == os.getpid():
                with contextlib.suppress(p11.PKCS11Error):
                    self._session.close()
            self._session, self._pid, self._keys = None, None, {}

    def _call(self, kek_id: str, operation: Any, what: str) -> Any:
        with self._lock:
            for attempt in (1, 2):
                key = self._key(kek_id)
                try:
                    return operation(key)
                except _SESSION_LOST as exc:
                    if attempt == 2:
                        raise CryptoError(f"the HSM could not {what} the data key: {type(exc).__name__}") from None
                    log.warning("PKCS#11 session lost (%s); opening a new one", type(exc).__name__)
                    self.close()  # the old session goes first: a second login of this process would be refused
                except p11.PKCS11Error as exc:
                    # a wrong key, a tampered wrapped key or another binding all end here (SoftHSM2 says GeneralError)
                    raise CryptoError(f"the HSM could not {what} the data key: {type(exc).__name__}") from None
        raise AssertionError("unreachable")

    def _key(self, label: str) -> Any:
        session = self._open()
        key = self._keys.get(label)
        if key is None:
            key = self._find(session, label)
            if key is None:
                raise CryptoError(f"the PKCS#11 token {self.token_label!r} holds no AES key labelled {label!r}")
            self._keys[label] = key
        return key

    def _find(self, session: Any, label: str) -> Any:
        try:
            return session.get_key(object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES, label=label)
        except p11.NoSuchKey:
            return None
        except p11.MultipleObjectsReturned:
            raise CryptoError(f"the PKCS#11 token {self.token_label!r} holds several keys labelled {label!r}") from None
        except p11.PKCS11Error as exc:
            raise CryptoError(f"the PKCS#11 token could not look up key {label!r}: {type(exc).__name__}") from None

    def _open(self) -> Any:
        """This process's session, opened (and the library initialized again after a fork) on first use."""
        pid = os.getpid()
        if self._session is not None and self._pid == pid:
            return self._session
        self._session, self._keys = None, {}
        try:
            lib = pkcs11.lib(str(self.module))
            module = str(self.module)
            if _initialized_in.get(module, pid) != pid:  # a forked child: the parent's library state is not ours
                lib.reinitialize()
            _initialized_in[module] = pid
            token = lib.get_token(token_label=self.token_label)
            try:
                self._session = token.open(user_pin=self._pin(), rw=True)
            except p11.UserAlreadyLoggedIn:  # PKCS#11 logs in per process and token: another session already did
                self._session = token.open(rw=True)
        except (p11.PKCS11Error, RuntimeError, OSError) as exc:
            raise CryptoError(f"cannot open the PKCS#11 token {self.token_label!r} with module {self.module}: "
                              f"{type(exc).__name__}") from None
        self._pid = pid
        log.info("opened a PKCS#11 session on token %r (process %d)", self.token_label, pid)
        return self._session

    def _pin(self) -> str:
        try:
            mode = open_to_others(self._pin_file)
            pin = self._pin_file.read_text().strip()
        except OSError:
            raise CryptoError(f"the PKCS#11 PIN file {self._pin_file} cannot be read") from None
        if mode is not None:
            message = f"the PKCS#11 PIN file {self._pin_file} is readable by other users (mode {mode}); chmod 600 it"
            if self._strict_pin_file:
                raise CryptoError(message)
            log.warning(message)
        if not pin:
            raise CryptoError(f"the PKCS#11 PIN file {self._pin_file} is empty")
        return pin
