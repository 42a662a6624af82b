"""HTTPS for ``pmapctl serve``: the certificate and key PMAP_TLS_CERT_FILE and PMAP_TLS_KEY_FILE name, checked
before the server starts (readable, matching, in date, an unencrypted key its owner's alone in production) and
served over TLS 1.2 or newer with forward-secret AEAD suites only."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from pmap.core.errors import ConfigurationError
from pmap.core.files import open_to_others
from pmap.core.settings import Settings

log = logging.getLogger("pmap.tls")

#: TLS 1.2's suites: ECDHE key exchange and AEAD ciphers only (TLS 1.3's suites are all of that kind already)
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS"
#: a certificate that ends within this many days is said at every start
EXPIRY_WARNING_DAYS = 30


@dataclass(frozen=True, slots=True)
class ServerCertificate:
    """What the start-up log says of the served certificate (nothing secret: the certificate is public)."""

    subject: str
    not_after: dt.datetime
    sha256: str


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """The server's TLS context: TLS 1.2 or newer, :data:`CIPHERS`, no renegotiation or compression."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        # a callable password: OpenSSL would otherwise ask for an encrypted key's passphrase on the terminal
        context.load_cert_chain(cert_file, key_file, password=_no_passphrase)
    except _EncryptedKey:
        raise ConfigurationError(f"PMAP_TLS_KEY_FILE {key_file} is encrypted: PMAP reads an unencrypted key, "
                                 "protected by its file's mode (readable by PMAP's user alone)") from None
    except FileNotFoundError as exc:
        raise ConfigurationError(f"the TLS file {exc.filename} does not exist (PMAP_TLS_CERT_FILE, "
                                 "PMAP_TLS_KEY_FILE)") from None
    except OSError as exc:  # ssl.SSLError is an OSError: no certificate, no key, or a key of another certificate
        reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
        raise ConfigurationError(f"the TLS certificate {cert_file} and key {key_file} could not be loaded "
                                 f"({reason}): PMAP_TLS_CERT_FILE needs the PEM certificate (then its chain) and "
                                 "PMAP_TLS_KEY_FILE its PEM private key") from None
    return context


class _EncryptedKey(Exception):
    pass


def _no_passphrase() -> bytes:
    raise _EncryptedKey


def check_server_tls(settings: Settings, *,
                     now: dt.datetime | None = None) -> tuple[ssl.SSLContext, ServerCertificate] | None:
    """The context to serve with and what to say of its certificate, or None when no TLS is configured; a
    :class:`ConfigurationError` when they cannot serve: one setting of the two, unreadable or mismatched files, a
    certificate not yet or no longer valid, or (production) a key file others may read."""
    cert_file, key_file, production = settings.tls_cert_file, settings.tls_key_file, settings.production
    if cert_file is None and key_file is None:
        return None
    if cert_file is None or key_file is None:
        missing = "PMAP_TLS_CERT_FILE" if cert_file is None else "PMAP_TLS_KEY_FILE"
        raise ConfigurationError(f"HTTPS needs both PMAP_TLS_CERT_FILE and PMAP_TLS_KEY_FILE: {missing} is unset")
    try:
        loose = open_to_others(key_file)
    except OSError as exc:
        raise ConfigurationError(f"PMAP_TLS_KEY_FILE {key_file} cannot be read ({exc.strerror})") from None
    if production and loose:
        raise ConfigurationError(f"PMAP_TLS_KEY_FILE {key_file} may be read by other users (mode {loose}): make it "
                                 "readable by PMAP's user alone (chmod 600)")
    context = server_context(cert_file, key_file)
    certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())  # the first one: the server's own
    now = now or dt.datetime.now(dt.UTC)
    served = ServerCertificate(subject=certificate.subject.rfc4514_string(), not_after=certificate.not_valid_after_utc,
                               sha256=hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest())
    if certificate.not_valid_before_utc > now:
        raise ConfigurationError(f"the TLS certificate {cert_file} is not valid before "
                                 f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    if served.not_after <= now:
        message = f"the TLS certificate {cert_file} expired on {served.not_after:%Y-%m-%d %H:%M} UTC"
        if production:
            raise ConfigurationError(f"{message}: renew it")
        log.warning("%s; clients will refuse it", message)
    elif served.not_after - now < dt.timedelta(days=EXPIRY_WARNING_DAYS):
        log.warning("the TLS certificate %s expires on %s UTC: renew it, then restart PMAP", cert_file,
                    f"{served.not_after:%Y-%m-%d %H:%M}")
    return context, served
