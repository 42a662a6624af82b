"""Simulated scanner APIs (VM, DAST, SAST, SCA, discovery, mobile), one router per vendor key.

``SANDBOX_VENDORS[key]["base_path"]`` is what to append to ``http://HOST:PORT`` to get the base URL
a PMAP user would type for that vendor: the ``/<key>`` prefix plus the vendor's own API base path
where it has one (``/tenable_sc/rest``, ``/snyk/rest``, ``/rapid7_insightvm/api/3``).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from fastapi import APIRouter

from pmap_sandbox.scanners import (
    _seeded,
    acunetix,
    black_duck,
    burp,
    checkmarx,
    dependency_track,
    github,
    invicti,
    jfrog_xray,
    mobsf,
    nessus,
    nowsecure,
    qualys,
    rapid7,
    runzero,
    semgrep,
    snyk,
    sonarqube,
    tenable_sc,
    tenable_vm,
    veracode,
    zap,
)

_MODULES: tuple[ModuleType, ...] = (
    tenable_vm,
    nessus,
    tenable_sc,
    qualys,
    rapid7,
    burp,
    zap,
    invicti,
    acunetix,
    sonarqube,
    checkmarx,
    veracode,
    semgrep,
    github,
    snyk,
    dependency_track,
    jfrog_xray,
    black_duck,
    runzero,
    mobsf,
    nowsecure,
)

ROUTERS: list[APIRouter] = [*(m.router for m in _MODULES), _seeded.router]
SANDBOX_VENDORS: dict[str, dict[str, Any]] = {m.KEY: m.VENDOR for m in _MODULES}

__all__ = ["ROUTERS", "SANDBOX_VENDORS"]
