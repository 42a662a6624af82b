"""The service's layering, read from the AST of every module (as tests/security/test_decrypt_path.py reads
the decrypt path), function-level and ``importlib`` imports included:

- only the CLI (``pmap/cli/``) imports the vendor sandbox, and the sandbox imports nothing of the service
  beyond :data:`SANDBOX_MAY_IMPORT`;
- the service's components import only downward, in the order of :data:`LAYERS`;
- module-level imports form no cycle, and no function-level import dodges one: each function-level import
  in ``pmap/`` and ``pmap_sandbox/`` is listed in :data:`LATE_IMPORTS` with its reason, and none of them
  would close a cycle if it were written at the top of its module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pmap", "pmap_sandbox")

#: The service's components, bottom to top. A module may import its own component and those on lower rungs;
#: components sharing a rung are independent (neither imports the other). See :func:`component`.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"core"}),  # pmap.core: settings, database, crypto primitives, errors, the guarded outbound client
    frozenset({"schema", "formats"}),  # every domain's tables (pmap.models, pmap.*.models); the report parsers
    frozenset({"credentials"}),  # the one decrypt path, the keyring
    frozenset({"audit"}),  # audit events (their actor is the credentials' Actor)
    frozenset({"auth"}),  # organizations, tokens, roles, the principal
    frozenset({"connectors"}),  # the connector contract, the catalog, the vendor implementations
    frozenset({"integrations", "jobs"}),  # integration records, connection tests, least-privilege checks; the job
    # engine (leases on job rows, uploads in the database, dispatch to threads or a broker)
    frozenset({"findings", "tickets", "schedules"}),  # imports, rules and findings; tickets, their links and
    # status changes; the schedules of integrations and the scheduler that starts what is due
    frozenset({"webhooks", "sync", "scans"}),  # webhook deliveries (ticket status changes to tickets); findings
    # syncs; scan launches
    frozenset({"console"}),  # the web console's pages and assets (pmap.console), whose routes are its api module
    frozenset({"api", "migrations"}),  # the HTTP routers (pmap.*.api, *_api); the schema migrations
    frozenset({"entry"}),  # pmap.app and pmap.cli, which compose the rest
)

#: What the sandbox may import from the service: nothing today. The sandbox simulates each vendor from the
#: vendor's documentation; importing PMAP's connector code would let a connector's misreading be mirrored
#: by the very sandbox that tests it. Add only a public module here (and only its public names pass).
SANDBOX_MAY_IMPORT: frozenset[str] = frozenset()

#: Function-level imports, by importing module and imported module ("*": any), each with its reason. A late
#: import that would close an import cycle is refused whatever its reason (test_no_late_import_dodges_a_cycle).
LATE_IMPORTS: Mapping[tuple[str, str], str] = {
    ("pmap.cli.main", "*"): "each pmapctl command imports what it runs when it runs, so `pmapctl --help` and the "
                            "small commands start without loading the app",
    ("pmap.findings.formats.registry", "pmap.findings.formats.sast_sca"): "the registry loads the parsers on first "
                                                                          "use, not when a module imports it",
    ("pmap.findings.formats.registry", "pmap.findings.formats.vm_dast"): "the same, for the other parser family",
    ("pmap.findings.importer", "pmap.connectors.catalog"): "every connector module, read only by `target_for`: an "
                                                           "import's parsing process never loads them",
    ("pmap_sandbox.server", "pmap_sandbox.scanners"): "build_app(routers, vendors) mounts a chosen subset "
                                                      "without importing every simulated vendor",
    ("pmap_sandbox.server", "pmap_sandbox.work"): "the same, for the work-tracker vendors",
}

_IMPORTERS = {"import_module", "__import__"}


@dataclass(frozen=True, slots=True)
class Import:
    """One import statement's edge: ``source`` imports ``target`` (``from a import b`` names ``a.b`` when
    that is a module)."""

    source: str
    target: str
    names: tuple[str, ...]
    line: int
    late: bool  # inside a function: runs when called, not when the module is imported
    typing_only: bool  # under ``if TYPE_CHECKING:``: never runs

    def __str__(self) -> str:
        return f"{self.source}:{self.line} -> {self.target}"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    if not level:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - level + 1]
    return ".".join([*base, *([name] if name else [])])


def imports_in(module: str, source: str, *, is_package: bool = False,
               modules: Iterable[str] = ()) -> list[Import]:
    """Every import of PMAP's packages in one module's source, statements and ``importlib`` calls alike."""
    known = set(modules)
    found: list[Import] = []

    def add(target: str, names: tuple[str, ...], node: ast.AST, late: bool, typing_only: bool) -> None:
        if target.split(".")[0] in PACKAGES:
            found.append(Import(module, target, names, getattr(node, "lineno", 0), late, typing_only))

    def visit(node: ast.AST, late: bool, typing_only: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, (), node, late, typing_only)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node.level, node.module)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                add(sub if sub in known else base, (alias.name,), node, late, typing_only)
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if called in _IMPORTERS and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                add(node.args[0].value, (), node, late, typing_only)
        for child in ast.iter_child_nodes(node):
            inner = late or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            guarded = typing_only or (isinstance(node, ast.If) and child in node.body and _is_type_checking(node.test))
            visit(child, inner, guarded)

    visit(ast.parse(source), False, False)
    return found


@cache
def _tree() -> dict[str, Path]:
    """Every module of the service and the sandbox, by dotted name."""
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


@cache
def _all_imports() -> tuple[Import, ...]:
    tree = _tree()
    return tuple(i for name, path in sorted(tree.items()) for i in imports_in(
        name, path.read_text(), is_package=path.name == "__init__.py", modules=tree))


def component(module: str) -> str:
    """The component of a ``pmap`` module: its domain package, with the tables (``models``), the report
    parsers (``findings.formats``), the routers (``api``) and the composition roots (``entry``) apart."""
    parts = module.split(".")
    if parts[0] != "pmap":
        return parts[0]
    if len(parts) == 1 or parts[1] == "core":
        return "core"
    if parts[1] in ("app", "cli"):
        return "entry"
    if parts[-1] == "api" or parts[-1].endswith("_api"):
        return "api"
    if parts[-1] == "models":
        return "schema"
    if parts[1:3] == ["findings", "formats"]:
        return "formats"
    return parts[1]


def _rung(name: str) -> int | None:
    return next((i for i, rung in enumerate(LAYERS) if name in rung), None)


def upward_imports(imports: Iterable[Import]) -> list[str]:
    """The imports of ``pmap`` modules that go up the layers or sideways to a sibling component."""
    bad = []
    for i in imports:
        if not (i.source.split(".")[0] == i.target.split(".")[0] == "pmap"):
            continue
        src, dst = component(i.source), component(i.target)
        low, high = _rung(dst), _rung(src)
        if src == dst:
            continue
        if low is None or high is None:
            bad.append(f"{i}: component {src if high is None else dst!r} has no rung in LAYERS")
        elif low >= high:
            bad.append(f"{i}: {src} (rung {high}) may not import {dst} (rung {low})")
    return bad


def sandbox_imports_outside_the_cli(imports: Iterable[Import]) -> list[str]:
    """Imports of the sandbox by any ``pmap`` module but the CLI's."""
    return [str(i) for i in imports if i.source.split(".")[0] == "pmap" and i.target.split(".")[0] == "pmap_sandbox"
            and not i.source.startswith("pmap.cli.")]


def service_imports_of_the_sandbox(imports: Iterable[Import]) -> list[str]:
    """Imports of the service by the sandbox beyond :data:`SANDBOX_MAY_IMPORT`'s public names."""
    return [str(i) for i in imports if i.source.split(".")[0] == "pmap_sandbox" and i.target.split(".")[0] == "pmap"
            and (i.target not in SANDBOX_MAY_IMPORT or not i.names or any(n.startswith("_") for n in i.names))]


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts))]


def runtime_graph(imports: Iterable[Import]) -> dict[str, set[str]]:
    """What importing each module runs: its module-level imports (not under TYPE_CHECKING) and the packages
    around them, except the importing module's own packages (already being imported)."""
    graph: dict[str, set[str]] = {}
    for i in imports:
        if i.late or i.typing_only:
            continue
        own = set(_ancestors(i.source))
        graph.setdefault(i.source, set()).update(
            t for t in (*_ancestors(i.target), i.target) if t not in own and t != i.source)
    return graph


def _path(graph: Mapping[str, set[str]], start: str, goal: str) -> list[str] | None:
    """A chain of imports from ``start`` to ``goal``, or None."""
    seen, stack = {start}, [[start]]
    while stack:
        chain = stack.pop()
        for nxt in sorted(graph.get(chain[-1], ())):
            if nxt == goal:
                return [*chain, nxt]
            if nxt not in seen:
                seen.add(nxt)
                stack.append([*chain, nxt])
    return None


def import_cycles(imports: Iterable[Import]) -> list[str]:
    """Cycles among module-level imports, one line each."""
    graph = runtime_graph(imports)
    cycles = set()
    for module in sorted(graph):
        for nxt in graph[module]:
            back = _path(graph, nxt, module)
            if back is not None:
                chain = [module, *back]
                k = chain.index(min(chain[:-1]))
                cycles.add(" -> ".join(chain[k:-1] + chain[:k + 1]))
    return sorted(cycles)


def cycle_dodges(imports: Iterable[Import]) -> list[str]:
    """Function-level imports that would close an import cycle at the top of their module."""
    imports = list(imports)
    graph = runtime_graph(imports)
    bad = []
    for i in imports:
        if not i.late:
            continue
        for target in (i.target, *(a for a in _ancestors(i.target) if a not in _ancestors(i.source))):
            back = _path(graph, target, i.source)
            if back is not None:
                bad.append(f"{i}: {' -> '.join(back)} imports it back")
                break
    return bad


def unlisted_late_imports(imports: Iterable[Import]) -> list[str]:
    """Function-level imports without an entry in :data:`LATE_IMPORTS`."""
    return [str(i) for i in imports if i.late
            and (i.source, "*") not in LATE_IMPORTS and (i.source, i.target) not in LATE_IMPORTS]


# --- the rules on the tree -------------------------------------------------------------------------------

def test_only_the_cli_imports_the_sandbox() -> None:
    assert sandbox_imports_outside_the_cli(_all_imports()) == []
    # and the CLI does: pmapctl sandbox serves it
    assert any(i.source == "pmap.cli.main" and i.target.startswith("pmap_sandbox") for i in _all_imports())


def test_the_sandbox_imports_no_more_of_the_service_than_listed() -> None:
    assert service_imports_of_the_sandbox(_all_imports()) == []


def test_every_component_has_its_rung() -> None:
    components = {component(m) for m in _tree() if m.split(".")[0] == "pmap"}
    assert components - set().union(*LAYERS) == set(), "add the new component to LAYERS"
    assert {"tickets", "webhooks", "integrations", "connectors", "findings"} <= components


def test_components_import_only_downward() -> None:
    assert upward_imports(_all_imports()) == []


def test_routers_live_in_api_modules() -> None:
    # the api component sits above every domain: a router in a service module would escape the rule
    routers = sorted(name for name, path in _tree().items() if name.split(".")[0] == "pmap"
                     and "APIRouter(" in path.read_text() and component(name) not in ("api", "entry"))
    assert routers == []


def test_module_level_imports_form_no_cycle() -> None:
    assert import_cycles(_all_imports()) == []


def test_no_late_import_dodges_a_cycle() -> None:
    assert cycle_dodges(_all_imports()) == []


def test_every_late_import_is_listed_with_its_reason() -> None:
    imports = _all_imports()
    assert unlisted_late_imports(imports) == []
    used = {(i.source, "*") if (i.source, "*") in LATE_IMPORTS else (i.source, i.target) for i in imports if i.late}
    assert set(LATE_IMPORTS) - used == set(), "an entry no import needs any more: remove it"


def test_tickets_and_permission_checks_have_one_home() -> None:
    modules = _tree()
    for gone in ("pmap.findings.tickets", "pmap.webhooks.processing", "pmap.webhooks.permissions"):
        assert gone not in modules
    assert {"pmap.tickets.models", "pmap.tickets.service", "pmap.tickets.api", "pmap.tickets.processing",
            "pmap.integrations.permissions"} <= set(modules)
    # the webhooks domain hands deliveries to tickets, never the other way round
    assert any(i.source.startswith("pmap.webhooks.") and i.target.startswith("pmap.tickets.") for i in _all_imports())


# --- the detectors see what they must --------------------------------------------------------------------

def _probe(module: str, source: str, modules: Iterable[str] = ()) -> list[Import]:
    return imports_in(module, source, modules=modules)


def test_the_detector_sees_every_kind_of_import() -> None:
    src = ("import importlib\nfrom typing import TYPE_CHECKING\nfrom pmap.core import db\n"
           "if TYPE_CHECKING:\n    from pmap.app import App\n"
           "def f():\n    from ..webhooks import schemes\n    importlib.import_module('pmap_sandbox.server')\n"
           "    return __import__('pmap.cli')\n")
    found = {(i.target, i.late, i.typing_only)
             for i in _probe("pmap.connectors.x", src, ["pmap.core.db", "pmap.webhooks.schemes"])}
    assert found == {("pmap.core.db", False, False), ("pmap.app", False, True), ("pmap.webhooks.schemes", True, False),
                     ("pmap_sandbox.server", True, False), ("pmap.cli", True, False)}


def test_an_upward_or_sideways_import_is_refused() -> None:
    up = _probe("pmap.connectors.vendors.azure_devops", "from pmap.webhooks.schemes import AZURE_USERNAME\n")
    late_up = _probe("pmap.tickets.processing", "def f():\n    from pmap.webhooks import clock\n")
    sideways = _probe("pmap.findings.importer", "from pmap.tickets.service import link_ticket\n")
    down = _probe("pmap.webhooks.processor", "from pmap.tickets import processing\n", ["pmap.tickets.processing"])
    unknown = _probe("pmap.billing.service", "from pmap.core import db\n")
    assert len(upward_imports(up)) == len(upward_imports(late_up)) == len(upward_imports(sideways)) == 1
    assert upward_imports(down) == []
    assert "no rung" in upward_imports(unknown)[0]


def test_the_sandbox_rules_catch_a_leak_either_way() -> None:
    service = _probe("pmap.app", "def f():\n    import pmap_sandbox.server\n")
    assert sandbox_imports_outside_the_cli(service) != []
    assert sandbox_imports_outside_the_cli(_probe("pmap.cli.main", "import pmap_sandbox.server\n")) == []
    sandbox = _probe("pmap_sandbox.work.jira", "from pmap.connectors.vendors.atlassian import STATES\n")
    assert service_imports_of_the_sandbox(sandbox) != []


def test_a_late_import_closing_a_cycle_is_found() -> None:
    imports = [*_probe("pmap.tickets.processing", "def f():\n    from pmap.findings import models\n",
                       ["pmap.findings.models"]),
               *_probe("pmap.findings.models", "from pmap.findings import tickets\n", ["pmap.findings.tickets"]),
               *_probe("pmap.findings.tickets", "from pmap.tickets import processing\n", ["pmap.tickets.processing"])]
    assert len(cycle_dodges(imports)) == 1
    assert cycle_dodges(imports[1:]) == [] and import_cycles(imports[1:]) == []
    hoisted = [Import(i.source, i.target, i.names, i.line, False, False) for i in imports]
    assert import_cycles(hoisted) != []
    assert unlisted_late_imports(imports) == [str(imports[0])]
