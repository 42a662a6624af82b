"""Text field types shared by request schemas."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator

#: C0 and C1 control characters; PostgreSQL refuses NUL in text, and a line break in a one-line
#: value lets it forge log lines or escape masking
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: control characters other than tab, line feed and carriage return (allowed in multi-line text)
BINARY_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
#: characters that make one line read as another: line and paragraph separators, the zero-width
#: space and BOM, bidirectional embeddings, overrides and isolates ("Trojan Source"). Joiners and
#: direction marks (U+200C-U+200F) stay: emoji sequences and Persian or Hebrew names need them.
DECEPTIVE_CHARS = re.compile("[\u2028\u2029\u200b\u202a-\u202e\u2066-\u2069\ufeff]")


#: Unicode categories a shown file name drops: controls (Cc), format characters (Cf: every bidi
#: embedding, override, isolate and mark incl. U+061C, zero-width characters, the BOM), line and
#: paragraph separators, and lone surrogates; none is needed to recognise a file by its name
_HIDDEN_IN_NAMES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
FILE_NAME_MAX = 255


def clean_file_name(name: str | None) -> str | None:
    """A client's file name fit to store and show: invisible and direction-changing characters dropped."""
    if not name:
        return None
    cleaned = "".join(ch for ch in name if unicodedata.category(ch) not in _HIDDEN_IN_NAMES)
    return cleaned[:FILE_NAME_MAX] or None


def check_one_line(value: str) -> str:
    """``value`` if it is one plain line of text, else ValueError (a pydantic validator)."""
    if CONTROL_CHARS.search(value) or DECEPTIVE_CHARS.search(value):
        raise ValueError("must be one line of text without control, invisible or direction-changing characters")
    return value


def check_text(value: str) -> str:
    """``value`` if it is text without NUL and control characters (lines allowed), else ValueError."""
    if BINARY_CHARS.search(value):
        raise ValueError("must be text without NUL or other control characters")
    return value


#: a name, label or key: one line, no control characters
OneLine = Annotated[str, AfterValidator(check_one_line)]
#: free text that may span lines (descriptions, PEM bundles), without NUL and other control characters
Text = Annotated[str, AfterValidator(check_text)]
