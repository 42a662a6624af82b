"""Loading the key-encryption keys from settings (:func:`load_keys`): the platform keyring (created in development
when there is none) and a PKCS#11 token (:mod:`pmap.credentials.pkcs11`)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from pmap.core.crypto import KekProvider, KekRef, Keyring, KeyStore, decode_key, generate_key
from pmap.core.errors import ConfigurationError
from pmap.core.files import open_to_others, private_directory
from pmap.core.settings import Settings
from pmap.credentials.pkcs11 import Pkcs11Provider

log = logging.getLogger("pmap.keyring")

DEV_KEYRING_NAME = "keyring.json"


def key_id_for(key: bytes) -> str:
    """A stable, non-secret id for a key given as a single value (distinct keys get distinct ids)."""
    return "k-" + hashlib.sha256(b"pmap-key-id:" + key).hexdigest()[:12]


def load_keyring(settings: Settings, *, sealed_data_exists: Callable[[], bool] | None = None) -> Keyring:
    """The keyring the settings name; in development, create one under the data directory if none.

    Production refuses to start without an explicit ``PMAP_PLATFORM_KEY`` or ``PMAP_KEYRING_FILE``.
    Development refuses to create a keyring when ``sealed_data_exists()`` says the database already
    holds data sealed with another key (PMAP started from another directory, most likely).
    """
    if settings.platform_key is not None and settings.keyring_file is not None:
        raise ConfigurationError("set PMAP_PLATFORM_KEY or PMAP_KEYRING_FILE, not both")
    if settings.platform_key is not None:
        key = decode_key(settings.platform_key.get_secret_value(), source="PMAP_PLATFORM_KEY")
        return Keyring.single(key, key_id_for(key))
    if settings.keyring_file is not None:
        return _read_file(settings.keyring_file, settings)
    if settings.production:
        raise ConfigurationError(
            "PMAP_ENV=production needs an explicit platform key: set PMAP_PLATFORM_KEY (base64, 256 bits; "
            "`pmapctl keys generate`) or PMAP_KEYRING_FILE, or a key-encryption key in an HSM (PMAP_PKCS11_MODULE, "
            "PMAP_PKCS11_TOKEN_LABEL, PMAP_PKCS11_PIN_FILE, PMAP_PKCS11_KEY_LABEL)"
        )
    path = settings.data_dir / DEV_KEYRING_NAME
    if path.exists():
        return _read_file(path, settings)
    if sealed_data_exists is not None and sealed_data_exists():
        raise ConfigurationError(
            f"there is no keyring in the data directory {settings.data_dir}, but the database already holds data "
            "sealed with a platform key: refusing to create a new keyring that cannot open it. Start PMAP from the "
            "directory whose .pmap holds that keyring, set PMAP_DATA_DIR to the directory that holds it, or set "
            "PMAP_KEYRING_FILE or PMAP_PLATFORM_KEY to the key that sealed the data"
        )
    private_directory(settings.data_dir)
    key = decode_key(generate_key(), source="generated")
    keyring = Keyring.single(key, key_id_for(key))
    try:
        keyring.to_file(path)
    except FileExistsError:  # another process created it first: use theirs
        return _read_file(path, settings)
    log.warning(
        "created a development keyring at %s (mode 0600); production must set PMAP_PLATFORM_KEY or "
        "PMAP_KEYRING_FILE", path,
    )
    return keyring


def _read_file(path: Path, settings: Settings) -> Keyring:
    try:
        mode = open_to_others(path)
    except OSError:
        raise ConfigurationError(f"keyring file {path} does not exist or cannot be read") from None
    if mode is not None:
        message = f"keyring file {path} is readable by other users (mode {mode}); chmod 600 it"
        if settings.production:
            raise ConfigurationError(message)
        log.warning(message)
    return Keyring.from_file(path)


PKCS11_SETTINGS = ("PMAP_PKCS11_MODULE", "PMAP_PKCS11_TOKEN_LABEL", "PMAP_PKCS11_PIN_FILE", "PMAP_PKCS11_KEY_LABEL")


def load_keys(settings: Settings, *, sealed_data_exists: Callable[[], bool] | None = None) -> KeyStore:
    """The key store the settings name: new envelopes under the HSM's ``PMAP_PKCS11_KEY_LABEL`` when PKCS#11 is
    configured, else under the keyring's primary key; envelopes under the keyring open whenever a keyring is
    configured (or, in development, found in the data directory). Nothing is opened here: the PKCS#11 session
    opens on first use, in the process that uses it."""
    values = (settings.pkcs11_module, settings.pkcs11_token_label, settings.pkcs11_pin_file, settings.pkcs11_key_label)
    if any(v is not None for v in values) and not all(values):
        missing = ", ".join(name for name, v in zip(PKCS11_SETTINGS, values, strict=True) if not v)
        raise ConfigurationError(f"a key-encryption key in an HSM needs all four PKCS#11 settings: {missing} unset")
    providers: dict[str, KekProvider] = {}
    keyring: Keyring | None = None
    has_pkcs11 = settings.pkcs11_module is not None
    if not has_pkcs11 or settings.platform_key is not None or settings.keyring_file is not None:
        keyring = load_keyring(settings, sealed_data_exists=sealed_data_exists)
    elif (settings.data_dir / DEV_KEYRING_NAME).exists() and not settings.production:
        keyring = _read_file(settings.data_dir / DEV_KEYRING_NAME, settings)  # it may still open older envelopes
    if keyring is not None:
        providers[Keyring.name] = keyring
    module, token, pin_file, label = values
    if module is not None and token and pin_file is not None and label:
        providers[Pkcs11Provider.name] = Pkcs11Provider(module, token, pin_file, strict_pin_file=settings.production)
        primary = KekRef(Pkcs11Provider.name, label)
    elif keyring is not None:
        primary = KekRef(Keyring.name, keyring.primary)
    else:  # unreachable: without PKCS#11 the keyring is loaded or load_keyring raised
        raise ConfigurationError("no key-encryption key is configured")
    return KeyStore(primary, providers, cache_seconds=settings.data_key_cache_seconds)
