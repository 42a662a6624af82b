"""One exception class per condition: the class fixes the status and the code, and nothing changes them."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import pmap
from pmap.core import errors
from pmap.core.errors import PmapError, UpstreamError, VendorRefused, upstream_error
from pmap.findings.formats.base import HostileReportError, ReportError

ROOT = Path(pmap.__file__).resolve().parent

#: "module:Class" -> (status, code, how to build one); every PmapError subclass in pmap must be listed
TREE: dict[str, tuple[int, str, Callable[[Any], PmapError]]] = {  # Any: each class has its own signature
    "pmap.core.errors:PmapError": (500, "internal_error", lambda c: c("m")),
    "pmap.core.errors:BadRequestError": (400, "bad_request", lambda c: c("m")),
    "pmap.core.errors:AuthenticationRequired": (401, "authentication_required", lambda c: c("m")),
    "pmap.core.errors:PermissionDenied": (403, "permission_denied", lambda c: c("m")),
    "pmap.core.errors:NotFound": (404, "not_found", lambda c: c("m")),
    "pmap.core.errors:Conflict": (409, "conflict", lambda c: c("m")),
    "pmap.core.errors:UnsupportedMediaType": (415, "unsupported_media_type", lambda c: c("m")),
    "pmap.core.errors:ValidationFailed": (422, "validation_failed", lambda c: c("m")),
    "pmap.core.errors:OperationNotSupported": (422, "operation_not_supported", lambda c: c("m")),
    "pmap.core.errors:RateLimited": (429, "rate_limited", lambda c: c("m")),
    "pmap.core.errors:ConfigurationError": (500, "configuration_error", lambda c: c("m")),
    "pmap.core.errors:CryptoError": (500, "credential_decrypt_failed", lambda c: c("m")),
    "pmap.core.errors:ServiceBusy": (503, "service_busy", lambda c: c()),
    "pmap.core.errors:UpstreamError": (502, "upstream_error", lambda c: c("m", step="connect")),
    "pmap.core.errors:VendorRefused": (422, "vendor_refused", lambda c: c("m", step="auth")),
    "pmap.core.errors:EgressDenied": (422, "egress_denied", lambda c: c("m")),
    "pmap.core.errors:ScanLaunchUnavailable": (422, "scan_launch_unavailable", lambda c: c("m", step="permission")),
    "pmap.core.errors:IntegrationDisabled": (409, "integration_disabled", lambda c: c("m")),
    "pmap.sync.service:SyncRunning": (409, "sync_running", lambda c: c("m")),
    "pmap.scans.service:ScanRunning": (409, "scan_running", lambda c: c("m")),
    "pmap.findings.jobs:JobCancelled": (503, "job_cancelled", lambda c: c("m")),
    "pmap.findings.importer:ReportRejected": (422, "report_invalid", lambda c: c(ReportError("sarif", "m"))),
    "pmap.findings.importer:ReportRefused": (422, "report_refused", lambda c: c(HostileReportError("sarif", "m"))),
    "pmap.webhooks.rotation:RotatedNotRegistered": (502, "rotated_not_registered", lambda c: c("m")),
}


def _pmap_modules() -> Iterator[str]:
    for info in pkgutil.walk_packages([str(ROOT)], prefix="pmap."):
        # migrations run inside alembic, __main__ runs the CLI: neither defines an error
        if not info.name.startswith(("pmap.migrations.", "pmap.cli.__main__")):
            yield info.name


def _all_subclasses(cls: type[PmapError]) -> set[type[PmapError]]:
    out = {cls}
    for sub in cls.__subclasses__():
        out |= _all_subclasses(sub)
    return out


def _name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _listed() -> list[tuple[str, type[PmapError]]]:
    """The table's classes that exist in this build (one may have been removed since)."""
    out = []
    for key in TREE:
        module, name = key.split(":")
        cls = getattr(importlib.import_module(module), name, None)
        if cls is not None:
            out.append((key, cls))
    return out


def test_every_error_class_in_pmap_is_in_the_table() -> None:
    for module in _pmap_modules():
        importlib.import_module(module)
    found = {_name(c) for c in _all_subclasses(PmapError) if c.__module__.startswith("pmap.")}
    assert found - set(TREE) == set(), "add the new error class to TREE (status, code) and to the report"


@pytest.mark.parametrize(("key", "cls"), _listed(), ids=[k for k, _ in _listed()])
def test_each_class_answers_its_own_status_and_code(key: str, cls: type[PmapError]) -> None:
    status, code, build = TREE[key]
    err = build(cls)
    assert type(err) is cls
    assert (cls.status, cls.code) == (status, code)
    assert (err.status, err.code) == (status, code)
    for name, value in (("status", 200), ("code", "ok")):
        with pytest.raises(AttributeError, match="fixed by the class"):
            setattr(err, name, value)
    assert (err.status, err.code) == (status, code)


def test_a_refusal_is_its_own_class_and_every_other_step_a_gateway_error() -> None:
    for step in ("auth", "permission"):
        err = upstream_error("refused", step=step, upstream_status=401)
        assert type(err) is VendorRefused and (err.status, err.code, err.step) == (422, "vendor_refused", step)
        assert err.upstream_status == 401
    assert type(upstream_error("no route", step="egress")) is errors.EgressDenied
    for step in ("dns", "connect", "tls", "http", "response", "timeout"):
        err = upstream_error("down", step=step)
        assert type(err) is UpstreamError and err.status == 502, step


def test_a_hostile_report_is_refused_and_a_broken_one_invalid() -> None:
    from pmap.findings.importer import ReportRefused, ReportRejected

    assert type(ReportRejected(HostileReportError("nessus", "an entity bomb"))) is ReportRefused
    broken = ReportRejected(ReportError("nessus", "truncated", "line 3"))
    assert type(broken) is ReportRejected and broken.code == "report_invalid" and "line 3" in broken.message


def _error_names(func: ast.AST, classes: set[str]) -> set[str]:
    """Names a function binds to an error: ``except … as err``, ``err = SomeError(…)``/``upstream_error(…)``."""
    names = set()
    for node in ast.walk(func):
        if isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            called = node.value.func
            if isinstance(called, ast.Name) and (called.id in classes or called.id == "upstream_error"):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def test_no_code_assigns_the_status_or_code_of_an_error() -> None:
    """Static, beside the run-time guard: no ``err.status = …``/``err.code = …`` on an error a function
    caught or built, nor on ``self`` inside an error class (a vendor session or a job row may have a status)."""
    for module in _pmap_modules():
        importlib.import_module(module)
    classes = {c.__name__ for c in _all_subclasses(PmapError)}
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        scopes: list[tuple[ast.AST, set[str]]] = [(f, _error_names(f, classes)) for f in ast.walk(tree)
                                                  if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)]
        scopes += [(c, {"self"}) for c in ast.walk(tree) if isinstance(c, ast.ClassDef)
                   and any(isinstance(b, ast.Name) and b.id in classes for b in c.bases)]
        for scope, names in scopes:
            for node in ast.walk(scope):
                if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                        and node.attr in errors.FIXED_BY_CLASS and isinstance(node.value, ast.Name)
                        and node.value.id in names):
                    found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}")
    assert found == []


def test_no_upstream_error_is_built_as_a_gateway_error_for_a_refusal() -> None:
    """Static: ``UpstreamError(…)`` is built only with a literal step that is no refusal; a step known
    only at run time goes through :func:`upstream_error`, which picks the class."""
    found = []
    for path in sorted(set(ROOT.rglob("*.py")) - {ROOT / "core" / "errors.py"}):  # where upstream_error builds them
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "UpstreamError"):
                continue
            step = next((k.value for k in node.keywords if k.arg == "step"), None)
            if not (isinstance(step, ast.Constant) and step.value not in errors.REFUSED_STEPS | {"egress"}):
                found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}")
    assert found == []
