"""The issue 10 probe (``python -m bench.probe``), run short: it finds no 5xx, and it does catch a leak."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("schemathesis", reason="the probe needs the `probe` extra: pip install -e '.[probe]'")

from bench import probe


@pytest.mark.slow
@pytest.mark.postgres
def test_a_short_probe_finds_no_server_error_and_catches_a_planted_leak(monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    seed = probe.seed

    def seed_with_a_known_leak(*args: Any, **kwargs: Any) -> probe.Seeded:
        seeded = seed(*args, **kwargs)
        # a "secret" every list answer holds: the canary check must see it and fail the run
        seeded.canaries["next_cursor"] = "planted leak"
        return seeded

    monkeypatch.setattr(probe, "seed", seed_with_a_known_leak)
    code = probe.main(["--max-time", "30", "--operator-time", "0", "--per-vendor", "1", "--quiet",
                       "--phases", "coverage,fuzzing"])
    out = capsys.readouterr().out
    kept = re.search(r"run directory kept: (\S+)", out)
    if kept:
        shutil.rmtree(Path(kept.group(1)), ignore_errors=True)
    found = [line for line in out.splitlines() if line.startswith("FOUND")]
    assert code == 1 and found, out
    assert all("planted leak" in line for line in found), "the probe found something real:\n" + "\n".join(found)
    assert any(line.startswith("FOUND canary in a response: GET /api/v1/") for line in found), out
    requests = int(re.search(r"requests (\d+)", out).group(1))  # type: ignore[union-attr]
    assert requests > 50 and re.search(r"\b5\d\d: ", out) is None, out
