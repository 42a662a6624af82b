"""README.md documents every ``PMAP_`` variable PMAP reads: each Settings field has a row in the
Configuration table, and every other variable read by the service or ``pmapctl`` is named."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from pmap.cli.main import app
from pmap.core.settings import Settings

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
#: an environment read spelled out in code: os.environ["PMAP_X"], os.environ.get("PMAP_X"), os.getenv("PMAP_X")
_READ = re.compile(r"""(?:environ\s*\[\s*|environ\.get\(\s*|getenv\(\s*|envvar\s*=\s*)["'](PMAP_[A-Z0-9_]+)["']""")


def _settings_variables() -> set[str]:
    prefix = Settings.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}


def _cli_variables() -> set[str]:
    found: set[str] = set()
    # typer carries its own copy of click: walk the command tree by shape, not by click's classes
    commands: list[Any] = [typer.main.get_command(app)]
    while commands:
        command = commands.pop()
        commands += list(getattr(command, "commands", {}).values())
        for param in command.params:
            envvars = param.envvar if isinstance(param.envvar, (list, tuple)) else [param.envvar]
            found |= {e for e in envvars if isinstance(e, str) and e.startswith("PMAP_")}
    return found


def _code_variables() -> set[str]:
    found: set[str] = set()
    for package in ("pmap", "pmap_sandbox"):
        for path in (REPO / package).rglob("*.py"):
            found |= set(_READ.findall(path.read_text(encoding="utf-8")))
    return found


def test_every_setting_has_a_row_in_the_configuration_table() -> None:
    rows = set(re.findall(r"^\| `(PMAP_[A-Z0-9_]+)` \|", README, re.MULTILINE))
    missing = sorted(_settings_variables() - rows)
    assert not missing, f"README.md's Configuration table lacks: {missing}"
    assert len(_settings_variables()) >= 20  # the walk saw the Settings class


def test_every_variable_read_by_pmap_or_pmapctl_is_named() -> None:
    assert {"PMAP_URL", "PMAP_TOKEN"} <= _cli_variables()  # the walk saw pmapctl import's options
    read = _cli_variables() | _code_variables()
    missing = sorted(v for v in read if f"`{v}`" not in README)
    assert not missing, f"README.md does not name: {missing}"


def test_the_table_names_nothing_pmap_does_not_read() -> None:
    rows = set(re.findall(r"^\| `(PMAP_[A-Z0-9_]+)` \|", README, re.MULTILINE))
    assert rows <= _settings_variables(), sorted(rows - _settings_variables())
