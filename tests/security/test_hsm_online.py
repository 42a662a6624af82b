"""Online rotation across key providers, in real processes: a `pmapctl serve` keeps answering connection tests (each
one a credential resolve) while `pmapctl keys rotate` moves every envelope from the keyring to a SoftHSM2 key, and
then to a new key of the token named only by the rotating process. Nothing fails meanwhile, the server is never
restarted for the new key (it opens envelopes under it, and seals what it saves under it once it has read the
rotation's name for it), and at the end a server holding only the HSM tests, syncs and reveals."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from bench.softhsm import SoftHsmToken, available, create_key, make_token
from pmap.core.crypto import generate_key
from pmap_sandbox.server import SandboxServer, build_app
from tests.cli.test_pmapctl import _env
from tests.console.harness import ROOT, Server, create_integration, start_server

pytestmark = pytest.mark.skipif(not available(), reason="SoftHSM2 is missing: `make test` installs it")


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> SoftHsmToken:
    return make_token(tmp_path_factory.mktemp("softhsm-online"))


class Client(threading.Thread):
    """Resolves credentials through the server over and over (connection tests), recording every answer."""

    def __init__(self, server: Server, ids: list[str]) -> None:
        super().__init__(daemon=True)
        self.server, self.ids = server, ids
        self.answers: list[tuple[int, bool]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            for iid in self.ids:
                r = self.server.api("POST", f"/integrations/{iid}/test")
                self.answers.append((r.status_code, r.status_code == 200 and r.json()["ok"] is True))

    def stop(self) -> list[tuple[int, bool]]:
        self.stopping.set()
        self.join(60)
        return self.answers


def _pmapctl(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pmap.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def _by_key(verify_stderr: str) -> dict[str, int]:
    """`pmapctl keys verify`'s envelopes per key."""
    lines = re.finditer(r"^\s+([\d,]+)\s+(\S+ \(version \d\))$", verify_stderr, re.M)
    return {m.group(2): int(m.group(1).replace(",", "")) for m in lines}


def test_rotation_keyring_to_hsm_to_a_new_hsm_key_while_a_client_resolves(tmp_path: Path, token: SoftHsmToken) -> None:
    first, second = f"kek-a-{uuid.uuid4().hex[:6]}", f"kek-b-{uuid.uuid4().hex[:6]}"
    create_key(token, first)
    platform_key = generate_key()
    with SandboxServer(build_app()) as sandbox:
        server = start_server(tmp_path, platform_key=platform_key)  # today: the keyring only
        try:
            ids = [create_integration(server, sandbox.base_url, "tenable_vm")["id"] for _ in range(24)]
            hook = create_integration(server, sandbox.base_url, "github_issues")["id"]
            assert server.api("POST", f"/integrations/{hook}/webhook/generate").status_code == 201
        finally:
            server.stop()
        cli = _env(tmp_path, PMAP_DATA_DIR=str(server.data_dir), PMAP_PLATFORM_KEY=platform_key)
        before = _pmapctl(["keys", "verify"], cli)
        assert before.returncode == 0, before.stderr
        assert [k.split(":")[0] for k in _by_key(before.stderr)] == ["keyring"], before.stderr

        # 1. every process gets the HSM key beside the keyring (the README's order), then rotation runs online
        refresh = {"PMAP_KEK_REFRESH_SECONDS": "1"}  # every process reads a rotation's new key within a second
        server = start_server(tmp_path, {**token.env(first), **refresh}, admin=server.admin_token,
                              platform_key=platform_key)
        client = Client(server, ids)
        client.start()
        try:
            time.sleep(0.5)
            moved = _pmapctl(["keys", "rotate", "--batch", "4"], {**cli, **token.env(first), **refresh})
            assert moved.returncode == 0, moved.stderr
            assert "25/25 integrations" in moved.stderr
            # 24 + 1 credentials and the webhook secret; no credential decrypted
            assert "re-wrapped 26 data key(s) and re-sealed 0" in " ".join(moved.stderr.split()), moved.stderr

            # 2. a new key in the token; only the rotating process is told: the server keeps serving unrestarted
            made = _pmapctl(["keys", "create-kek", "--label", second], {**cli, **token.env(first)})
            assert made.returncode == 0, made.stderr
            moved = _pmapctl(["keys", "rotate", "--batch", "4"], {**cli, **token.env(second), **refresh})
            assert moved.returncode == 0, moved.stderr
            time.sleep(0.5)
            # and seals what it saves now under the new key, without a restart (counted under it below)
            saved = create_integration(server, sandbox.base_url, "tenable_vm")["id"]
            assert server.api("POST", f"/integrations/{saved}/test").json()["ok"] is True
        finally:
            answers = client.stop()
        assert len(answers) >= 2 * len(ids) and all(ok for _status, ok in answers), answers[-5:]
        assert server.proc.poll() is None
        # the unrestarted server opens envelopes under the key it was never configured with
        assert server.api("POST", f"/integrations/{ids[0]}/test").json()["ok"] is True
        server.stop()

        # 3. the keyring goes: a server and the CLI with the HSM alone open, test, sync and reveal everything
        hsm_only = {**_env(tmp_path, PMAP_DATA_DIR=str(server.data_dir)), **token.env(second)}
        after = _pmapctl(["keys", "verify"], hsm_only)
        assert after.returncode == 0, after.stderr
        assert _by_key(after.stderr) == {f"pkcs11:{second} (version 2)": 28}, after.stderr
        assert _pmapctl(["audit", "verify"], hsm_only).returncode == 0
        server = start_server(tmp_path, token.env(second), admin=server.admin_token, platform_key=None)
        try:
            assert all(server.api("POST", f"/integrations/{i}/test").json()["ok"] for i in ids)
            made_now = create_integration(server, sandbox.base_url, "tenable_vm")["id"]  # sealed inside the HSM
            read = server.api("GET", f"/integrations/{made_now}").json()
            assert read["id"] == made_now and "credentials" not in read
            assert server.api("POST", f"/integrations/{made_now}/test").json()["ok"] is True
            job = server.api("POST", f"/integrations/{ids[0]}/sync").json()["job"]
            deadline = time.monotonic() + 60
            while job["status"] in {"queued", "running"} and time.monotonic() < deadline:
                time.sleep(0.3)
                job = server.api("GET", f"/jobs/{job['id']}").json()
            assert job["status"] == "succeeded", job
            revealed = server.api("POST", f"/integrations/{hook}/webhook/reveal")
            assert revealed.status_code == 200 and revealed.json()["secret"]
            assert platform_key not in server.log_text() and token.pin_file.read_text().strip() not in server.log_text()
        finally:
            server.stop()
