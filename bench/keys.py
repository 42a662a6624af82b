"""Envelope encryption benchmark: credential resolve, seal and listing with the keyring KEK and with an HSM KEK.

Every figure beside bare baselines measured in the same run: a raw AES-GCM decrypt under the data key, and a
bare SoftHSM2 unwrap (and wrap) of one 32-byte key through python-pkcs11, no PMAP code. Resolves, audit write
left out as in :mod:`bench.integrations`, of:

* a version 1 envelope, the content directly under a keyring key (what PMAP stored before envelope version 2);
* a version 2 envelope under the keyring KEK;
* a version 2 envelope under a SoftHSM2 KEK, data key cache warm;
* the same with the cache off (``PMAP_DATA_KEY_CACHE_SECONDS=0``): every resolve unwraps in the HSM.

Then one seal (the create path) per KEK, and 100-item pages of 10,000 integrations through the real HTTP API
per KEK, on SQLite and PostgreSQL, with the decrypts the listing caused (must be 0).

    python -m bench.keys
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

from bench.common import pct, pg_schema
from bench.integrations import CREDS, CREDS_AAD, bench_list, close_hsm, content_cipher, per_call_us, resolve_call
from bench.softhsm import SoftHsmToken, available, make_token
from pmap.core.crypto import KeyStore, generate_key
from pmap.core.settings import Settings
from pmap.credentials.keyring import load_keys
from pmap.credentials.service import seal_credentials

KEK_LABEL = "pmap-bench-kek"
N_FAST = 50_000  # calls per repeat of the in-memory figures
N_HSM = 5_000  # calls per repeat of the figures that go into the HSM


def bare_hsm(token: SoftHsmToken) -> tuple[float, float]:
    """µs per AES-GCM unwrap and per wrap of one 32-byte key inside the token, python-pkcs11 alone; the session is
    closed afterwards (it holds the process's login: see :func:`bench.integrations.close_hsm`)."""
    import pkcs11
    from pkcs11 import KeyType, Mechanism, ObjectClass
    from pkcs11.mechanisms import GCMParams

    aad = b"pmap:data-key:v2:pkcs11:" + KEK_LABEL.encode() + b"|" + CREDS_AAD + uuid.uuid4().bytes
    iv, data_key = os.urandom(12), os.urandom(32)
    lib = pkcs11.lib(str(token.module))
    with lib.get_token(token_label=token.token_label).open(user_pin=token.pin_file.read_text().strip()) as session:
        kek: Any = session.get_key(object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES, label=KEK_LABEL)
        wrapped = kek.encrypt(data_key, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, aad, 128))
        assert kek.decrypt(wrapped, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, aad, 128)) == data_key
        unwrap_us = per_call_us(lambda: kek.decrypt(
            wrapped, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, aad, 128)), N_HSM)
        wrap_us = per_call_us(lambda: kek.encrypt(
            data_key, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, aad, 128)), N_HSM)
    return unwrap_us, wrap_us


def legacy_envelope(keys: KeyStore, rid: uuid.UUID) -> dict[str, Any]:
    """A version 1 envelope, built as PMAP sealed them before data keys (tests/security/test_key_rotation.py)."""
    assert keys.keyring is not None
    nonce = os.urandom(12)
    payload = json.dumps(CREDS, separators=(",", ":"), sort_keys=True).encode()
    ct = keys.keyring.aead(keys.keyring.primary).encrypt(nonce, payload, CREDS_AAD + rid.bytes)
    return {"v": 1, "kid": keys.keyring.primary, "n": base64.b64encode(nonce).decode(),
            "ct": base64.b64encode(ct).decode()}


def sealed(keys: KeyStore, rid: uuid.UUID) -> dict[str, Any]:
    env = seal_credentials(keys, rid, CREDS)
    assert env is not None
    return env


def bench_resolve_and_seal(ring: KeyStore, hsm: KeyStore, unwrap_us: float, wrap_us: float) -> list[tuple[str, str]]:
    """Table rows (measure, figure) of the resolve and seal figures beside their bare baselines (the bare HSM unwrap
    and wrap are measured first: :func:`bare_hsm`)."""
    cold = KeyStore(hsm.primary, hsm.providers, cache_seconds=0)  # same provider and session, no data key cache
    rid = uuid.uuid4()
    aad = CREDS_AAD + rid.bytes
    v1, v2_ring, v2_hsm = legacy_envelope(ring, rid), sealed(ring, rid), sealed(hsm, rid)
    assert (v1["v"], v2_ring["kp"], v2_hsm["kp"]) == (1, "keyring", "pkcs11")

    cipher = content_cipher(ring, v2_ring, aad)
    nonce, ct = binascii.a2b_base64(v2_ring["n"]), binascii.a2b_base64(v2_ring["ct"])
    raw_us = per_call_us(lambda: cipher.decrypt(nonce, ct, aad), N_FAST)
    bare_us = per_call_us(lambda: cipher.decrypt(binascii.a2b_base64(v2_ring["n"]),
                                                 binascii.a2b_base64(v2_ring["ct"]), aad), N_FAST)
    v1_us = per_call_us(resolve_call(ring, v1, rid), N_FAST)
    ring_us = per_call_us(resolve_call(ring, v2_ring, rid), N_FAST)
    warm_us = per_call_us(resolve_call(hsm, v2_hsm, rid), N_FAST)
    cold_us = per_call_us(resolve_call(cold, v2_hsm, rid), N_HSM)
    seal_ring_us = per_call_us(lambda: seal_credentials(ring, rid, CREDS), N_FAST // 5)
    seal_hsm_us = per_call_us(lambda: seal_credentials(hsm, rid, CREDS), N_HSM)

    def vs_today(us: float) -> str:
        return f"{us:.2f} µs = {us / v1_us:.2f}× today's resolve, {us / bare_us:.1f}× the bare open"

    return [
        ("bare: AES-GCM decrypt of nonce + ciphertext under the data key", f"{raw_us:.2f} µs"),
        ("bare: AES-GCM open of the stored envelope (base64 nonce + ciphertext, decrypt)", f"{bare_us:.2f} µs"),
        ("bare: SoftHSM2 AES-GCM unwrap of one 32-byte key (python-pkcs11 alone)", f"{unwrap_us:.2f} µs"),
        ("bare: SoftHSM2 AES-GCM wrap of one 32-byte key (python-pkcs11 alone)", f"{wrap_us:.2f} µs"),
        ("resolve, version 1 envelope under the keyring (today's stored format)",
         f"{v1_us:.2f} µs = {v1_us / bare_us:.1f}× the bare open"),
        ("resolve, version 2 under the keyring KEK (data key cached)", vs_today(ring_us)),
        ("resolve, version 2 under the SoftHSM2 KEK, data key cache warm", vs_today(warm_us)),
        ("resolve, version 2 under the SoftHSM2 KEK, cache off (an HSM unwrap per resolve)",
         f"{vs_today(cold_us)}; {cold_us - unwrap_us:.1f} µs beyond the bare unwrap"),
        ("seal (create path), keyring KEK", f"{seal_ring_us:.2f} µs"),
        ("seal (create path), SoftHSM2 KEK (one HSM wrap)",
         f"{seal_hsm_us:.2f} µs = {seal_hsm_us / seal_ring_us:.1f}× the keyring seal; "
         f"{seal_hsm_us - wrap_us:.1f} µs beyond the bare wrap"),
    ]



def list_row(label: str, settings: Settings) -> tuple[str, str]:
    times, decrypts = bench_list(label, settings)
    return (f"list 100/page over 10,000 integrations, {label} (real HTTP, 300 random pages)",
            f"median {pct(times, 50):.1f} ms, p95 {pct(times, 95):.1f} ms, decrypts {decrypts}")


def main() -> None:
    print("PMAP envelope encryption benchmark: keyring KEK and SoftHSM2 KEK")
    if not available():
        raise SystemExit("SoftHSM2 is not installed (scripts/ensure-softhsm.sh)")
    with tempfile.TemporaryDirectory() as tmp:
        # the token first: SoftHSM2 reads SOFTHSM2_CONF once, when the library loads
        token = make_token(Path(tmp) / "hsm", KEK_LABEL)
        unwrap_us, wrap_us = bare_hsm(token)
        key = generate_key()
        ring_settings = Settings(data_dir=Path(tmp), platform_key=key)
        hsm_settings = ring_settings.model_copy(update=token.settings(KEK_LABEL))
        hsm = load_keys(hsm_settings)  # new envelopes under the HSM KEK; the keyring still opens older ones
        rows = bench_resolve_and_seal(load_keys(ring_settings), hsm, unwrap_us, wrap_us)
        close_hsm(hsm)
        for provider, settings in (("keyring KEK", ring_settings), ("SoftHSM2 KEK", hsm_settings)):
            db = Path(tmp) / f"{provider.split()[0]}.db"
            rows.append(list_row(f"SQLite, {provider}", settings.model_copy(update={"database_url": f"sqlite:///{db}"})))
        for provider, settings in (("keyring KEK", ring_settings), ("SoftHSM2 KEK", hsm_settings)):
            with pg_schema() as url:
                rows.append(list_row(f"PostgreSQL, {provider}", settings.model_copy(update={"database_url": url})))
    print("\n| measure | figure |\n|---|---|")
    for measure, figure in rows:
        print(f"| {measure} | {figure} |")


if __name__ == "__main__":
    main()
