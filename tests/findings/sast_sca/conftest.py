"""Makes this folder's helper modules (``_sast_sca_corpus``, ``sast_sca_deviations``) importable
whatever pytest import mode is in use; their names are unique across the test tree."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
