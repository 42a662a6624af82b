"""The console's static files and the third-party browser code it serves itself.

PMAP's own scripts and styles live in ``static/``. Third-party code (Swagger UI for ``/docs``) is installed by
``make install`` from the npm registry with ``npm ci`` into ``vendor/node_modules``, pinned by
``vendor/package-lock.json``'s integrity hashes; only the files listed in :data:`VENDOR_FILES` are served,
each page naming its SHA-384 as the ``integrity`` of its tag (Subresource Integrity). Nothing is copied into
the repository and nothing loads from a CDN.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATES_DIR = HERE / "templates"
VENDOR_DIR = HERE / "vendor" / "node_modules"

#: served name -> file under VENDOR_DIR
VENDOR_FILES: dict[str, str] = {
    "swagger-ui/swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",
    "swagger-ui/swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
}


def vendor_path(name: str) -> Path | None:
    """The installed file served as ``/assets/vendor/<name>``; None when unknown or not installed."""
    relative = VENDOR_FILES.get(name)
    if relative is None:
        return None
    path = VENDOR_DIR / relative
    return path if path.is_file() else None


@lru_cache(maxsize=len(VENDOR_FILES))
def integrity(name: str) -> str:
    """The Subresource Integrity value (``sha384-...``) of a vendor file; the files do not change while
    PMAP runs (they change with ``make install``, followed by a restart)."""
    path = vendor_path(name)
    if path is None:
        raise FileNotFoundError(name)
    return "sha384-" + base64.b64encode(hashlib.sha384(path.read_bytes()).digest()).decode()


def vendor_installed() -> bool:
    """Every vendor file is installed (``make install`` ran ``npm ci``)."""
    return all(vendor_path(name) is not None for name in VENDOR_FILES)


def packaged_vendor_files() -> list[str]:
    """Where a wheel holds the served vendor files (``make dist`` checks a built wheel for each)."""
    return [f"pmap/console/vendor/node_modules/{relative}" for relative in VENDOR_FILES.values()]
