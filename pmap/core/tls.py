"""HTTPS for ``pmapctl serve``: the certificate and key PMAP_TLS_CERT_FILE and PMAP_TLS_KEY_FILE name, checked
before the server starts (readable, matching, in date, an unencrypted key its owner's alone in production) and
served over TLS 1.2 or newer with forward-secret AEAD suites only. A renewed certificate is picked up without a
restart (:class:`ReloadingTls`)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import ssl
import threading
import time
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
        log.warning("the TLS certificate %s expires on %s UTC: renew it (PMAP reads the renewed files)", cert_file,
                    f"{served.not_after:%Y-%m-%d %H:%M}")
    return context, served


class ReloadingTls:
    """The served TLS context, renewed without a restart: every ``every`` seconds a thread looks at the certificate
    and key files and, when they changed, checks them as at start (:func:`check_server_tls`) and serves the new pair
    to every later handshake; a pair that fails the check is logged and the one in service stays.

    The server's context is never changed in place while handshakes use it: each handshake is handed the newest
    context, built whole, from the server context's SNI callback (called for every client hello, with or
    without a server name)."""

    def __init__(self, settings: Settings, context: ssl.SSLContext, served: ServerCertificate) -> None:
        self.settings, self.served = settings, served
        self.current = context  # replaced whole by the reload thread; read by handshakes
        context.sni_callback = self._hand_newest  # on the context the server listens with
        self._seen = self._files()

    def _hand_newest(self, connection: ssl.SSLObject | ssl.SSLSocket, _server_name: str | None,
                     _context: ssl.SSLContext) -> None:
        current = self.current
        if connection.context is not current:
            connection.context = current

    def _files(self) -> tuple[tuple[int, int, int], ...]:
        """What identifies the two files' contents on disk (a renewal writes or renames them)."""
        stamps = []
        for path in (self.settings.tls_cert_file, self.settings.tls_key_file):
            try:
                st = os.stat(path) if path is not None else None
            except OSError:
                st = None
            stamps.append((st.st_ino, st.st_size, st.st_mtime_ns) if st is not None else (0, 0, 0))
        return tuple(stamps)

    def reload_if_changed(self) -> bool:
        """Serve the files anew when they changed and pass the start-up checks; True when the served pair changed."""
        seen = self._files()
        if seen == self._seen:
            return False
        self._seen = seen
        try:
            checked = check_server_tls(self.settings)
        except ConfigurationError as exc:
            log.error("the changed TLS files were not taken, the certificate in service stays: %s", exc.message)
            return False
        if checked is None:
            return False
        context, served = checked
        context.sni_callback = self._hand_newest
        self.current, self.served = context, served
        log.info("serving the renewed TLS certificate for %s (SHA-256 %s), valid until %s UTC", served.subject,
                 served.sha256, f"{served.not_after:%Y-%m-%d %H:%M}")
        return True

    def start(self, every: float) -> None:
        """Look at the files every ``every`` seconds from a daemon thread (0: never)."""
        if every <= 0:
            return

        def watch() -> None:
            while True:
                time.sleep(every)
                self.reload_if_changed()

        threading.Thread(target=watch, name="pmap-tls-reload", daemon=True).start()  # ends with the process
