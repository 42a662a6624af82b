"""The key-encryption key in an HSM (a real SoftHSM2 token through python-pkcs11): envelopes name it and open
through it, the key never leaves the token, a dump alone opens nothing, start-up proves the token can unwrap,
each process opens its own session, and unwrapped data keys are cached for a bounded time only."""

from __future__ import annotations

import json
import multiprocessing
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from bench.softhsm import SoftHsmToken, available, create_key, make_token
from pmap.app import create_app, start
from pmap.core import crypto
from pmap.core.crypto import KekRef, Keyring, KeyStore, associated_data, decode_key, generate_key, open_envelope, seal
from pmap.core.errors import ConfigurationError, CryptoError
from pmap.core.seams import Actor, Purpose
from pmap.core.settings import Settings
from pmap.credentials.pkcs11 import Pkcs11Provider
from pmap.integrations.models import Integration
from tests.conftest import Api

pytestmark = pytest.mark.skipif(not available(), reason="SoftHSM2 is missing: `make test` installs it")

SECRET = "hsm-canary-" + "Zq9" * 8


@pytest.fixture(scope="session")
def token(tmp_path_factory: pytest.TempPathFactory) -> SoftHsmToken:
    """This test process's one token (SoftHSM2 lists tokens once per process); tests tell keys apart by label."""
    return make_token(tmp_path_factory.mktemp("softhsm"))


@pytest.fixture
def label(token: SoftHsmToken) -> str:
    name = f"kek-{uuid.uuid4().hex[:8]}"
    create_key(token, name)
    return name


def _settings(db_url: str, tmp_path: Path, token: SoftHsmToken, label: str, **kw: Any) -> Settings:
    fields: dict[str, Any] = {"database_url": db_url, "data_dir": tmp_path / "data", "scheduler_enabled": False,
                              **token.settings(label), **kw}
    return Settings(**fields)


@pytest.fixture
def hsm_api(db_url: str, tmp_path: Path, token: SoftHsmToken, label: str) -> Iterator[Api]:
    with TestClient(create_app(_settings(db_url, tmp_path, token, label)), raise_server_exceptions=False) as client:
        yield Api(client)


def _create(api: Api, h: dict[str, str]) -> Integration:
    body = {"name": f"t-{uuid.uuid4().hex[:6]}", "vendor": "tenable_vm",
            "credentials": {"access_key": "A" * 24, "secret_key": SECRET}}
    r = api.client.post("/api/v1/integrations", json=body, headers=h)
    assert r.status_code == 201, r.text
    with api.state.sessions() as s:
        return s.get_one(Integration, uuid.UUID(r.json()["id"]))


def _resolve(api: Api, row: Integration) -> dict[str, str]:
    with api.state.resolver.resolve(row, purpose=Purpose.SYNC, actor=Actor("system", "t", row.organization_id)) as c:
        return dict(c.values)


def test_envelopes_name_the_hsm_key_and_open_through_it(hsm_api: Api, label: str) -> None:
    row = _create(hsm_api, hsm_api.token())
    env = row.encrypted_credentials
    assert env is not None and (env["v"], env["kp"], env["kek"]) == (2, "pkcs11", label)
    assert _resolve(hsm_api, row)["secret_key"] == SECRET
    # with PKCS#11 alone, development makes no keyring file
    assert not (hsm_api.state.settings.data_dir / "keyring.json").exists()
    assert hsm_api.client.get("/readyz").status_code == 200  # the readiness probe wraps and unwraps in the token


def test_the_metrics_count_cache_hits_hsm_unwraps_and_failures(hsm_api: Api) -> None:
    from tests.observability.conftest import scrape, value

    name = "pmap_data_keys_total"
    before = scrape(hsm_api.client)
    row = _create(hsm_api, hsm_api.token())
    hsm_api.state.keys.forget_data_keys()
    for _ in range(3):
        _resolve(hsm_api, row)
    env = row.encrypted_credentials
    assert env is not None
    row.encrypted_credentials = {**env, "dk": env["dk"][:-8] + "AAAAAAA="}  # tampered: the HSM refuses it
    with pytest.raises(CryptoError):
        _resolve(hsm_api, row)
    after = scrape(hsm_api.client)

    def grew(source: str) -> float:
        return value(after, name, provider="pkcs11", source=source) - value(before, name, provider="pkcs11",
                                                                             source=source)

    assert (grew("unwrapped"), grew("cache"), grew("failed")) == (1, 2, 1)
    assert SECRET not in after


def test_the_kek_never_leaves_the_token(token: SoftHsmToken, label: str) -> None:
    import pkcs11
    from pkcs11 import Attribute, KeyType, ObjectClass

    provider = Pkcs11Provider(token.module, token.token_label, token.pin_file)
    session = provider._open()  # this process's session, logged in
    try:
        key = session.get_key(object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES, label=label)
        assert key[Attribute.SENSITIVE] is True and key[Attribute.EXTRACTABLE] is False
        assert key[Attribute.NEVER_EXTRACTABLE] is True and key[Attribute.TOKEN] is True
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            key[Attribute.VALUE]
    finally:
        provider.close()


def test_a_dump_holds_no_usable_key(db_url: str, tmp_path: Path, token: SoftHsmToken, label: str) -> None:
    settings = _settings(db_url, tmp_path, token, label)
    with TestClient(create_app(settings)) as client:
        api = Api(client)
        row = _create(api, api.token())
        with api.state.sessions() as s:
            dump = json.dumps([r.encrypted_credentials for r in s.scalars(select(Integration))])
    assert SECRET not in dump and "A" * 24 not in dump
    # every key a process could be given without the token opens nothing: the data key is wrapped inside the HSM
    env = row.encrypted_credentials
    assert env is not None
    aad = crypto.aad_prefix("integrations", "encrypted_credentials") + row.id.bytes
    stranger = KeyStore.of(Keyring.single(decode_key(generate_key(), source="t"), env["kek"]))
    with pytest.raises(CryptoError):
        open_envelope(stranger, {**env, "kp": "keyring"}, aad)
    # and PMAP without the token refuses to start on that database: its canary is under the HSM key
    without = settings.model_copy(update={"pkcs11_module": None, "pkcs11_token_label": None, "pkcs11_pin_file": None,
                                          "pkcs11_key_label": None, "platform_key": SecretStr(generate_key())})
    with pytest.raises(ConfigurationError, match=f"pkcs11:{label}"):
        start(without)


def test_production_refuses_to_start_when_the_token_cannot_prove_it_unwraps(
        tmp_path: Path, token: SoftHsmToken, label: str) -> None:
    # fresh processes: PKCS#11 logs in once per process, so each start is its own `pmapctl` (as in production)
    from tests.cli.test_pmapctl import _env, _run

    url = f"sqlite:///{tmp_path / 'pmap.db'}"
    env = _env(tmp_path, PMAP_ENV="production", PMAP_DATABASE_URL=url, **token.env(label))
    assert _run(["db", "upgrade"], env).returncode == 0
    ok = _run(["keys", "verify"], env)  # starts: proves itself and seals its canary under the HSM key
    assert ok.returncode == 0, ok.stderr
    wrong_pin = tmp_path / "wrong-pin"
    wrong_pin.write_text("not-the-pin-4242")
    wrong_pin.chmod(0o600)
    loose = tmp_path / "loose-pin"
    loose.write_text(token.pin_file.read_text())
    loose.chmod(0o644)
    for changed, reason in (({"PMAP_PKCS11_PIN_FILE": str(wrong_pin)}, "does not open its canary (cannot open the "
                                                                      "PKCS#11 token"),
                            ({"PMAP_PKCS11_TOKEN_LABEL": "no-such-token"}, "cannot open the PKCS#11 token"),
                            ({"PMAP_PKCS11_KEY_LABEL": "no-such-key"}, "holds no AES key labelled 'no-such-key'"),
                            ({"PMAP_PKCS11_PIN_FILE": str(loose)}, "readable by other users")):
        out = _run(["keys", "verify"], {**env, **changed})
        said = " ".join(out.stderr.split())
        assert out.returncode == 1 and reason in said and "refusing to start" in said, said
        assert "not-the-pin-4242" not in out.stderr + out.stdout and token.pin_file.read_text().strip() not in said


def test_partial_pkcs11_settings_are_refused(tmp_path: Path, token: SoftHsmToken) -> None:
    from pmap.credentials.keyring import load_keys

    with pytest.raises(ConfigurationError, match="PMAP_PKCS11_PIN_FILE, PMAP_PKCS11_KEY_LABEL"):
        load_keys(Settings(data_dir=tmp_path, pkcs11_module=token.module, pkcs11_token_label=token.token_label))


def _unwrap_in_child(provider: Pkcs11Provider, label: str, conn: Any) -> None:
    keys = KeyStore(KekRef("pkcs11", label), {"pkcs11": provider}, cache_seconds=0)
    aad = associated_data("t", "c", "1")
    try:
        conn.send((os.getpid(), open_envelope(keys, seal(keys, b"from the child", aad), aad), provider._pid))
    except Exception as exc:  # reported to the parent, which fails the test
        conn.send((os.getpid(), repr(exc).encode(), None))


def test_each_process_opens_its_own_session_after_a_fork(token: SoftHsmToken, label: str) -> None:
    provider = Pkcs11Provider(token.module, token.token_label, token.pin_file)
    keys = KeyStore(KekRef("pkcs11", label), {"pkcs11": provider}, cache_seconds=0)
    aad = associated_data("t", "c", "1")
    assert open_envelope(keys, seal(keys, b"in the parent", aad), aad) == b"in the parent"
    assert provider._pid == os.getpid()
    parent, child = multiprocessing.get_context("fork").Pipe()
    proc = multiprocessing.get_context("fork").Process(target=_unwrap_in_child, args=(provider, label, child))
    proc.start()
    pid, opened, session_pid = parent.recv()
    proc.join(10)
    assert opened == b"from the child" and session_pid == pid != os.getpid()
    # the parent's session is untouched by the child's
    assert open_envelope(keys, seal(keys, b"still", aad), aad) == b"still"
    provider.close()


class _CountingProvider:
    """A keyring that counts unwraps (what the HSM would be asked)."""

    name: ClassVar[str] = "keyring"

    def __init__(self) -> None:
        self.ring = Keyring.single(decode_key(generate_key(), source="t"), "k1")
        self.unwraps = 0

    def wrap(self, kek_id: str, data_key: bytes, aad: bytes) -> bytes:
        return self.ring.wrap(kek_id, data_key, aad)

    def unwrap(self, kek_id: str, wrapped: bytes, aad: bytes) -> bytes:
        self.unwraps += 1
        return self.ring.unwrap(kek_id, wrapped, aad)


def test_unwrapped_data_keys_are_cached_for_a_bounded_time_and_number(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    provider = _CountingProvider()
    keys = KeyStore(KekRef("keyring", "k1"), {"keyring": provider}, cache_seconds=60, clock=lambda: now[0])
    aad = associated_data("t", "c", "1")
    env = seal(keys, b"x", aad)
    for _ in range(5):
        assert open_envelope(keys, env, aad) == b"x"
    assert provider.unwraps == 1
    now[0] = 61.0  # expired: asked again
    open_envelope(keys, env, aad)
    assert provider.unwraps == 2
    keys.forget_data_keys()
    open_envelope(keys, env, aad)
    assert provider.unwraps == 3
    # the cache is keyed by its binding too: the same envelope under another row's binding is not a hit
    with pytest.raises(CryptoError):
        open_envelope(keys, env, associated_data("t", "c", "2"))
    # bounded in number: the least recently used goes first
    monkeypatch.setattr(crypto, "DATA_KEY_CACHE_SIZE", 2)
    small = KeyStore(KekRef("keyring", "k1"), {"keyring": provider}, cache_seconds=60, clock=lambda: now[0])
    envs = [seal(small, b"y", aad) for _ in range(3)]
    before = provider.unwraps
    for e in envs:
        open_envelope(small, e, aad)
    open_envelope(small, envs[0], aad)  # evicted by the third
    assert provider.unwraps - before == 4
    # 0: never cached
    never = KeyStore(KekRef("keyring", "k1"), {"keyring": provider}, cache_seconds=0)
    env = seal(never, b"z", aad)
    before = provider.unwraps
    for _ in range(3):
        open_envelope(never, env, aad)
    assert provider.unwraps - before == 3


def test_a_session_the_device_dropped_is_opened_again(token: SoftHsmToken, label: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    provider = Pkcs11Provider(token.module, token.token_label, token.pin_file)
    keys = KeyStore(KekRef("pkcs11", label), {"pkcs11": provider}, cache_seconds=0)
    aad = associated_data("t", "c", "1")
    env = seal(keys, b"before", aad)
    provider._session.close()  # as a restarted HSM would: the handle the provider holds is dead
    assert open_envelope(keys, env, aad) == b"before"  # one new session (and login), then the unwrap
    assert [r.message for r in caplog.records if "session lost" in r.message] == [
        "PKCS#11 session lost (SessionHandleInvalid); opening a new one"]
    assert open_envelope(keys, seal(keys, b"after", aad), aad) == b"after"
    provider.close()
