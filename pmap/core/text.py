"""Text field types shared by request schemas."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

#: C0 and C1 control characters; PostgreSQL refuses NUL in text, and a line break in a one-line
#: value lets it forge log lines or escape masking
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: control characters other than tab, line feed and carriage return (allowed in multi-line text)
BINARY_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _one_line(value: str) -> str:
    if CONTROL_CHARS.search(value):
        raise ValueError("must be one line of text without control characters")
    return value


def _text(value: str) -> str:
    if BINARY_CHARS.search(value):
        raise ValueError("must be text without NUL or other control characters")
    return value


#: a name, label or key: one line, no control characters
OneLine = Annotated[str, AfterValidator(_one_line)]
#: free text that may span lines (descriptions, PEM bundles), without NUL and other control characters
Text = Annotated[str, AfterValidator(_text)]
