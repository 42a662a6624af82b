"""A SoftHSM2 token of its own in a directory (for the PKCS#11 tests and the keys bench): never the system's tokens.

SoftHSM2 finds its token directory through ``SOFTHSM2_CONF``, read when the library initializes; the token is
made with ``softhsm2-util`` and its keys with :meth:`pmap.credentials.pkcs11.Pkcs11Provider.create_key` (what
``pmapctl keys create-kek`` runs). The user PIN is random and written to a 0600 file, as in production.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

MODULE = Path(os.environ.get("PMAP_TEST_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so"))


@dataclass(frozen=True, slots=True)
class SoftHsmToken:
    """One initialized token: what PMAP's four PKCS#11 settings and ``SOFTHSM2_CONF`` need."""

    conf: Path
    module: Path
    token_label: str
    pin_file: Path

    def env(self, key_label: str) -> dict[str, str]:
        """Environment variables for a PMAP process using this token with ``key_label`` as its KEK."""
        return {"SOFTHSM2_CONF": str(self.conf), "PMAP_PKCS11_MODULE": str(self.module),
                "PMAP_PKCS11_TOKEN_LABEL": self.token_label, "PMAP_PKCS11_PIN_FILE": str(self.pin_file),
                "PMAP_PKCS11_KEY_LABEL": key_label}

    def settings(self, key_label: str) -> dict[str, object]:
        """The same, as ``Settings`` fields (``SOFTHSM2_CONF`` must be in the environment: see :func:`make_token`)."""
        return {"pkcs11_module": self.module, "pkcs11_token_label": self.token_label,
                "pkcs11_pin_file": self.pin_file, "pkcs11_key_label": key_label}


def available() -> bool:
    """Whether SoftHSM2 is installed (`make test` installs it: scripts/ensure-softhsm.sh)."""
    return MODULE.exists() and shutil.which("softhsm2-util") is not None


_made: SoftHsmToken | None = None  # this process's token


def make_token(directory: Path, *key_labels: str, label: str = "pmap-test") -> SoftHsmToken:
    """This process's token, made in ``directory`` on the first call, with a new AES-256 KEK per label.

    Sets ``SOFTHSM2_CONF`` in this process. The library reads it and lists the tokens once, when first loaded, so a
    process has one token: later calls add their keys to it and return it (``directory`` is then unused), and
    callers tell their keys apart by label."""
    global _made
    if _made is not None:
        for key_label in key_labels:
            create_key(_made, key_label)
        return _made
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    pin = secrets.token_hex(8)
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin,
                    "--so-pin", secrets.token_hex(8)], check=True, env=env, capture_output=True)
    pin_file = directory / "pin"
    fd = os.open(pin_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(pin + "\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    token = _made = SoftHsmToken(conf, MODULE, label, pin_file)
    for key_label in key_labels:
        create_key(token, key_label)
    return token


def create_key(token: SoftHsmToken, key_label: str) -> None:
    """A new KEK in ``token`` (through PMAP's own provider, as ``pmapctl keys create-kek`` does)."""
    from pmap.credentials.pkcs11 import Pkcs11Provider

    provider = Pkcs11Provider(token.module, token.token_label, token.pin_file)
    try:
        provider.create_key(key_label)
    finally:
        provider.close()
