"""`make dist`'s wheel: built from this tree (after `make install`'s `npm ci`), it holds the console's vendor files
and migrations, nothing of the tests, and PMAP run from the unpacked wheel alone serves the API docs' vendor files."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from pmap.console.assets import VENDOR_DIR, VENDOR_FILES, vendor_installed

ROOT = Path(__file__).resolve().parents[2]


def _problems(wheel: Path) -> list[str]:
    spec = importlib.util.spec_from_file_location("check_wheel", ROOT / "scripts" / "check-wheel.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.problems(str(wheel)))


def test_the_wheel_holds_the_vendor_files_and_serves_them_unpacked(tmp_path: Path) -> None:
    assert vendor_installed(), "make install runs npm ci first"
    # from a copy of the tracked files and what npm installed: a build in place would reuse an earlier build/ tree
    source = tmp_path / "src"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in [n for n in tracked.decode().split("\0") if n]:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(VENDOR_DIR, source / VENDOR_DIR.relative_to(ROOT))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
                            str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    [wheel] = (tmp_path / "dist").glob("pmap-*.whl")
    assert _problems(wheel) == []
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    # the unpacked wheel alone (not this tree): its package serves each vendor file, with its integrity
    script = (
        "import pmap, sys\n"
        "from fastapi.testclient import TestClient\n"
        "from pmap.app import create_app\n"
        "from pmap.core.settings import Settings\n"
        "from pmap.core.crypto import generate_key\n"
        f"assert pmap.__file__.startswith({str(unpacked)!r}), pmap.__file__\n"
        "settings = Settings(database_url='sqlite://', data_dir=sys.argv[1], platform_key=generate_key())\n"
        "client = TestClient(create_app(settings))\n"
        f"for name in {sorted(VENDOR_FILES)!r}:\n"
        "    r = client.get('/assets/vendor/' + name)\n"
        "    assert r.status_code == 200 and len(r.content) > 1000, (name, r.status_code)\n"
        "print('served')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(unpacked)}
    env.pop("PMAP_DATABASE_URL", None)
    ran = subprocess.run([sys.executable, "-c", script, str(tmp_path / "data")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0 and ran.stdout.strip() == "served", ran.stderr[-3000:]
