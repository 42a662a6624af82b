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
import timeit
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import pct, pg_schema
from bench.integrations import CREDS, CREDS_AAD, bench_list, close_hsm, content_cipher, resolve_call
from bench.softhsm import SoftHsmToken, available, make_token
from pmap.core.crypto import KeyStore, generate_key
from pmap.core.settings import Settings
from pmap.credentials.keyring import load_keys
from pmap.credentials.service import seal_credentials

KEK_LABEL = "pmap-bench-kek"
N_FAST = 50_000  # calls per round of the in-memory figures
N_HSM = 5_000  # calls per round of the figures that go into the HSM


@contextmanager
def bare_hsm(token: SoftHsmToken) -> Iterator[tuple[Callable[[], object], Callable[[], object]]]:
    """An AES-GCM unwrap and a wrap of one 32-byte key inside the token, python-pkcs11 alone, on a session of its
    own. PMAP's provider must have logged in first: the login belongs to the process, so this session shares it
    (a second login would fail with UserAlreadyLoggedIn, see :func:`bench.integrations.close_hsm`)."""
    import pkcs11
    from pkcs11 import KeyType, Mechanism, ObjectClass
    from pkcs11.mechanisms import GCMParams

    aad = b"pmap:data-key:v2:pkcs11:" + KEK_LABEL.encode() + b"|" + CREDS_AAD + uuid.uuid4().bytes
    iv, data_key = os.urandom(12), os.urandom(32)
    with pkcs11.lib(str(token.module)).get_token(token_label=token.token_label).open() as session:
        kek: Any = session.get_key(object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES, label=KEK_LABEL)
        wrapped = kek.encrypt(data_key, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, aad, 128))
        assert kek.decrypt(wrapped, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, aad, 128)) == data_key
        yield (lambda: kek.decrypt(wrapped, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, aad, 128)),
               lambda: kek.encrypt(data_key, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, aad, 128)))


def interleaved_us(calls: dict[str, tuple[Callable[[], object], int]], rounds: int = 5) -> dict[str, float]:
    """µs per call of each, the minimum over ``rounds`` that time every one in turn (``n`` calls each): on a busy
    2-core machine a burst of load then spoils one round of every figure, not every round of one figure."""
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        for name, (fn, n) in calls.items():
            best[name] = min(best[name], timeit.timeit(fn, number=n) / n * 1e6)
    return best


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


def bench_resolve_and_seal(ring: KeyStore, hsm: KeyStore, token: SoftHsmToken) -> list[tuple[str, str]]:
    """Table rows (measure, figure) of the resolve and seal figures beside their bare baselines."""
    cold = KeyStore(hsm.primary, hsm.providers, cache_seconds=0)  # same provider and session, no data key cache
    rid = uuid.uuid4()
    aad = CREDS_AAD + rid.bytes
    v1, v2_ring, v2_hsm = legacy_envelope(ring, rid), sealed(ring, rid), sealed(hsm, rid)  # the HSM logs in here
    assert (v1["v"], v2_ring["kp"], v2_hsm["kp"]) == (1, "keyring", "pkcs11")
    cipher = content_cipher(ring, v2_ring, aad)
    nonce, ct = binascii.a2b_base64(v2_ring["n"]), binascii.a2b_base64(v2_ring["ct"])
    with bare_hsm(token) as (unwrap, wrap):
        us = interleaved_us({
            "raw": (lambda: cipher.decrypt(nonce, ct, aad), N_FAST),
            "bare": (lambda: cipher.decrypt(binascii.a2b_base64(v2_ring["n"]), binascii.a2b_base64(v2_ring["ct"]),
                                            aad), N_FAST),
            "unwrap": (unwrap, N_HSM),
            "wrap": (wrap, N_HSM),
            "v1": (resolve_call(ring, v1, rid), N_FAST),
            "ring": (resolve_call(ring, v2_ring, rid), N_FAST),
            "warm": (resolve_call(hsm, v2_hsm, rid), N_FAST),
            "cold": (resolve_call(cold, v2_hsm, rid), N_HSM),
            "seal_ring": (lambda: seal_credentials(ring, rid, CREDS), N_FAST // 5),
            "seal_hsm": (lambda: seal_credentials(hsm, rid, CREDS), N_HSM),
        })

    def vs_today(name: str) -> str:
        ratio, bare = us[name] / us["v1"], us[name] / us["bare"]
        return f"{us[name]:.2f} µs = {ratio:.2f}× today's resolve, {bare:.1f}× the bare open"

    return [
        ("bare: AES-GCM decrypt of nonce + ciphertext under the data key", f"{us['raw']:.2f} µs"),
        ("bare: AES-GCM open of the stored envelope (base64 nonce + ciphertext, decrypt)", f"{us['bare']:.2f} µs"),
        ("bare: SoftHSM2 AES-GCM unwrap of one 32-byte key (python-pkcs11 alone)", f"{us['unwrap']:.2f} µs"),
        ("bare: SoftHSM2 AES-GCM wrap of one 32-byte key (python-pkcs11 alone)", f"{us['wrap']:.2f} µs"),
        ("resolve, version 1 envelope under the keyring (today's stored format)",
         f"{us['v1']:.2f} µs = {us['v1'] / us['bare']:.1f}× the bare open"),
        ("resolve, version 2 under the keyring KEK (data key cached)", vs_today("ring")),
        ("resolve, version 2 under the SoftHSM2 KEK, data key cache warm", vs_today("warm")),
        ("resolve, version 2 under the SoftHSM2 KEK, cache off (an HSM unwrap per resolve)",
         f"{vs_today('cold')}; {us['cold'] - us['unwrap']:.1f} µs beyond the bare unwrap"),
        ("seal (create path), keyring KEK", f"{us['seal_ring']:.2f} µs"),
        ("seal (create path), SoftHSM2 KEK (one HSM wrap)",
         f"{us['seal_hsm']:.2f} µs = {us['seal_hsm'] / us['seal_ring']:.1f}× the keyring seal; "
         f"{us['seal_hsm'] - us['wrap']:.1f} µs beyond the bare wrap"),
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
        key = generate_key()
        ring_settings = Settings(data_dir=Path(tmp), platform_key=key)
        hsm_settings = ring_settings.model_copy(update=token.settings(KEK_LABEL))
        hsm = load_keys(hsm_settings)  # new envelopes under the HSM KEK; the keyring still opens older ones
        rows = bench_resolve_and_seal(load_keys(ring_settings), hsm, token)
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
