"""HTTPS served by `pmapctl serve` itself (pmap.core.tls): TLS 1.2 or newer with forward-secret AEAD suites only,
nothing in plain HTTP on the port, and a start refused, with a clear message and no key material, for files that
cannot serve. Certificates and keys are made here at run time."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import os
import secrets
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.common import free_port
from pmap.core.crypto import generate_key
from pmap.core.errors import ConfigurationError
from pmap.core.settings import Settings
from pmap.core.tls import EXPIRY_WARNING_DAYS, check_server_tls

LOOPBACK = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path
    key_pem: bytes


def make_pair(directory: Path, *, starts: dt.timedelta = dt.timedelta(minutes=-5),
              lasts: dt.timedelta = dt.timedelta(days=90), passphrase: bytes | None = None,
              name: str = "pmap.test") -> Pair:
    """A self-signed certificate for 127.0.0.1 (its own CA), valid from now + ``starts`` for ``lasts``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    begins = dt.datetime.now(dt.UTC) + starts
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(begins).not_valid_after(begins + lasts)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    pair = Pair(directory / "cert.pem", directory / "key.pem", key_pem)
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(key_pem)
    pair.key.chmod(0o600)
    return pair


def settings_for(pair: Pair, *, production: bool = True, **changes: object) -> Settings:
    fields: dict[str, object] = {"env": "production" if production else "development", "tls_cert_file": pair.cert,
                                 "tls_key_file": pair.key, **changes}
    return Settings(**fields)  # type: ignore[arg-type]


def client_context(pair: Pair, *, maximum: ssl.TLSVersion | None = None, ciphers: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pair.cert))
    if maximum is not None:
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = maximum
    if ciphers is not None:
        context.set_ciphers(ciphers)
    return context


def handshake(port: int, context: ssl.SSLContext) -> tuple[str, str]:
    """The TLS version and suite the server agreed to with ``context``; raises ssl.SSLError when it refused."""
    with socket.create_connection((LOOPBACK, port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=LOOPBACK) as tls:
        cipher = tls.cipher()
        assert cipher is not None
        return str(tls.version()), cipher[0]


@dataclass
class Served:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def serve(tmp_path: Path, extra: dict[str, str]) -> Served:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMAP_")}
    env.update({"PMAP_ENV": "production", "PMAP_DATA_DIR": str(tmp_path / "data"), "PMAP_PLATFORM_KEY": generate_key(),
                "PMAP_BOOTSTRAP_ADMIN_TOKEN": "pmap_" + secrets.token_urlsafe(32), "PMAP_SCHEDULER_ENABLED": "false",
                **extra})
    log = tmp_path / "serve.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pmap.cli", "serve", "--host", LOOPBACK, "--port", str(port)],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Served(port, proc, log)


def wait_ready(served: Served, context: ssl.SSLContext) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert served.proc.poll() is None, served.text()
        try:
            if httpx.get(f"https://{LOOPBACK}:{served.port}/readyz", verify=context, timeout=2,
                         trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, served.text()
        time.sleep(0.2)


@pytest.fixture
def https(tmp_path: Path) -> Iterator[tuple[Served, Pair]]:
    pair = make_pair(tmp_path / "tls")
    served = serve(tmp_path, {"PMAP_TLS_CERT_FILE": str(pair.cert), "PMAP_TLS_KEY_FILE": str(pair.key)})
    try:
        wait_ready(served, client_context(pair))
        yield served, pair
    finally:
        served.proc.terminate()
        served.proc.wait(timeout=15)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")  # asked on purpose
def test_serve_answers_over_tls_1_2_or_newer_with_forward_secret_aead_suites_only(
        https: tuple[Served, Pair]) -> None:
    served, pair = https
    base = f"https://{LOOPBACK}:{served.port}"
    r = httpx.get(f"{base}/sign-in", verify=client_context(pair), timeout=10, trust_env=False)
    assert r.status_code == 200
    assert r.headers["strict-transport-security"] == "max-age=31536000"
    assert "secure" in r.headers["set-cookie"].lower()  # production's cookies, now over a channel that carries them
    # the port speaks TLS alone: a plain HTTP request gets no HTTP answer
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://{LOOPBACK}:{served.port}/healthz", timeout=5, trust_env=False)
    # TLS 1.3, and TLS 1.2 with ECDHE and an AEAD cipher
    assert handshake(served.port, client_context(pair))[0] == "TLSv1.3"
    assert handshake(served.port, client_context(pair, maximum=ssl.TLSVersion.TLSv1_2,
                                                 ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")) == (
        "TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert handshake(served.port, client_context(pair, maximum=ssl.TLSVersion.TLSv1_2,
                                                 ciphers="ECDHE-ECDSA-CHACHA20-POLY1305"))[0] == "TLSv1.2"
    # refused: CBC suites (uvicorn's own default list takes them), and TLS 1.1 and older
    for ciphers in ("ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384"):
        with pytest.raises(ssl.SSLError):
            handshake(served.port, client_context(pair, maximum=ssl.TLSVersion.TLSv1_2, ciphers=ciphers))
    with pytest.raises(ssl.SSLError):
        handshake(served.port, client_context(pair, maximum=ssl.TLSVersion.TLSv1_1, ciphers="ALL:@SECLEVEL=0"))
    said = served.text()
    assert "serving HTTPS with the certificate for CN=pmap.test" in said
    assert pair.key_pem.decode().splitlines()[1] not in said


def test_production_refuses_to_serve_with_a_key_file_others_can_read(tmp_path: Path) -> None:
    pair = make_pair(tmp_path / "tls")
    pair.key.chmod(0o644)
    served = serve(tmp_path, {"PMAP_TLS_CERT_FILE": str(pair.cert), "PMAP_TLS_KEY_FILE": str(pair.key)})
    assert served.proc.wait(timeout=60) == 1
    said = " ".join(served.text().split())
    assert "may be read by other users (mode -rw-r--r--)" in said and "chmod 600" in said, said
    assert pair.key_pem.decode().splitlines()[1] not in said


def test_production_over_plain_http_says_a_tls_proxy_is_needed(tmp_path: Path) -> None:
    served = serve(tmp_path, {})
    try:
        deadline = time.monotonic() + 60
        while "serving plain HTTP" not in served.text():
            assert served.proc.poll() is None and time.monotonic() < deadline, served.text()
            time.sleep(0.2)
        assert "TLS-terminating proxy" in served.text()
    finally:
        served.proc.terminate()
        served.proc.wait(timeout=15)


def test_files_that_cannot_serve_are_refused_by_name_without_key_material(tmp_path: Path) -> None:
    pair = make_pair(tmp_path / "a")
    other = make_pair(tmp_path / "b")
    cases: list[tuple[Settings, str]] = [
        (Settings(env="production", tls_cert_file=pair.cert), "PMAP_TLS_KEY_FILE is unset"),
        (Settings(env="production", tls_key_file=pair.key), "PMAP_TLS_CERT_FILE is unset"),
        (settings_for(pair, tls_key_file=other.key), "could not be loaded (KEY_VALUES_MISMATCH)"),
        (settings_for(pair, tls_key_file=tmp_path / "missing.pem"), "cannot be read"),
        (settings_for(pair, tls_cert_file=tmp_path / "missing.pem"), "does not exist"),
        (settings_for(pair, tls_cert_file=pair.key), "could not be loaded"),  # a key where the certificate goes
    ]
    locked = make_pair(tmp_path / "c", passphrase=b"correct horse battery")
    cases.append((settings_for(locked), "is encrypted: PMAP reads an unencrypted key"))
    expired = make_pair(tmp_path / "d", starts=dt.timedelta(days=-30), lasts=dt.timedelta(days=1))
    cases.append((settings_for(expired), "expired on"))
    early = make_pair(tmp_path / "e", starts=dt.timedelta(days=2))
    cases.append((settings_for(early), "is not valid before"))
    for settings, reason in cases:
        with pytest.raises(ConfigurationError) as refused:
            check_server_tls(settings)
        assert reason in refused.value.message, (reason, refused.value.message)
        for p in (pair, other, locked):
            assert p.key_pem.decode().splitlines()[1] not in refused.value.message
    assert check_server_tls(Settings(env="production")) is None  # no TLS asked for


def test_development_serves_an_expired_certificate_with_a_warning_and_one_near_its_end_is_said(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    expired = make_pair(tmp_path / "old", starts=dt.timedelta(days=-30), lasts=dt.timedelta(days=1))
    with caplog.at_level(logging.WARNING, logger="pmap.tls"):
        assert check_server_tls(settings_for(expired, production=False)) is not None
    assert "expired on" in caplog.text and "clients will refuse it" in caplog.text
    caplog.clear()
    ending = make_pair(tmp_path / "ending", lasts=dt.timedelta(days=EXPIRY_WARNING_DAYS - 1))
    with caplog.at_level(logging.WARNING, logger="pmap.tls"):
        served = check_server_tls(settings_for(ending))
    assert served is not None and "renew it (PMAP reads the renewed files)" in caplog.text
    caplog.clear()
    fresh = make_pair(tmp_path / "fresh", lasts=dt.timedelta(days=EXPIRY_WARNING_DAYS + 2))
    with caplog.at_level(logging.WARNING, logger="pmap.tls"):
        assert check_server_tls(settings_for(fresh)) is not None
    assert caplog.text == ""


def served_fingerprint(port: int, trusted: ssl.SSLContext) -> str:
    """The SHA-256 of the certificate a new connection is served."""
    with socket.create_connection((LOOPBACK, port), timeout=10) as raw, \
            trusted.wrap_socket(raw, server_hostname=LOOPBACK) as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return hashlib.sha256(der).hexdigest()


def fingerprint(pair: Pair) -> str:
    return hashlib.sha256(x509.load_pem_x509_certificate(pair.cert.read_bytes()).public_bytes(
        serialization.Encoding.DER)).hexdigest()


def put(source: Path, target: Path) -> None:
    """Replace ``target`` with ``source``'s bytes at once (a renewal tool's rename), mode 0600."""
    staged = target.with_suffix(".new")
    staged.write_bytes(source.read_bytes())
    staged.chmod(0o600)
    os.replace(staged, target)


def test_a_renewed_certificate_is_served_without_a_restart_and_a_broken_renewal_is_not(tmp_path: Path) -> None:
    old, new, other = (make_pair(tmp_path / n, name=f"{n}.pmap.test") for n in ("old", "new", "other"))
    live = make_pair(tmp_path / "live")
    put(old.cert, live.cert)
    put(old.key, live.key)
    trusted = ssl.create_default_context(cadata=old.cert.read_text() + new.cert.read_text() + other.cert.read_text())
    served = serve(tmp_path, {"PMAP_TLS_CERT_FILE": str(live.cert), "PMAP_TLS_KEY_FILE": str(live.key),
                              "PMAP_TLS_RELOAD_SECONDS": "0.5"})
    try:
        wait_ready(served, trusted)
        assert served_fingerprint(served.port, trusted) == fingerprint(old)
        with httpx.Client(verify=trusted, trust_env=False, timeout=10) as kept:  # a connection open across it
            assert kept.get(f"https://{LOOPBACK}:{served.port}/healthz").status_code == 200
            put(new.key, live.key)  # the renewal: key first, then its certificate
            put(new.cert, live.cert)
            deadline = time.monotonic() + 30
            while served_fingerprint(served.port, trusted) != fingerprint(new):
                assert time.monotonic() < deadline and served.proc.poll() is None, served.text()
                time.sleep(0.2)
            assert kept.get(f"https://{LOOPBACK}:{served.port}/healthz").status_code == 200
        assert f"serving the renewed TLS certificate for CN=new.pmap.test (SHA-256 {fingerprint(new)}" in served.text()
        # a certificate whose key is not the one on disk: refused, the renewed pair stays in service
        put(other.cert, live.cert)
        deadline = time.monotonic() + 30
        while "the changed TLS files were not taken" not in served.text():
            assert time.monotonic() < deadline and served.proc.poll() is None, served.text()
            time.sleep(0.2)
        assert served_fingerprint(served.port, trusted) == fingerprint(new)
        assert httpx.get(f"https://{LOOPBACK}:{served.port}/healthz", verify=trusted, timeout=10,
                         trust_env=False).status_code == 200
        said = served.text()
        for pair in (old, new, other):
            assert pair.key_pem.decode().splitlines()[1] not in said
    finally:
        served.proc.terminate()
        served.proc.wait(timeout=15)
