"""Vendor URL paths built from settings and request fields, one segment at a time.

A setting such as GitHub's ``repository`` or Azure Boards' ``project`` becomes part of a vendor URL
path. Pasted into an f-string, ``"../otherorg/Security"`` climbs out of the configured base path and
the stored credential is sent to a place its owner never configured. Every such value goes through
:func:`vendor_path` instead: each segment is checked (:func:`segment_problem`) and percent-encoded,
and a bad one is a 422 naming the field before anything is sent. The same checks run when a setting
is saved (:func:`path_setting_problem`, through ``ConnectionSettings.path_settings``), and
:func:`dot_segment_in` lets the outbound client refuse any path that would leave its base.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from pmap.core.errors import FieldProblem, ValidationFailed

#: percent-decoding rounds before giving up: a server (or a proxy before it) may decode more than once
_DECODE_ROUNDS = 4
_PLACEHOLDER = re.compile(r"\{(\w+)([/%]?)\}")
# C0, DEL and C1 controls: CR/LF split requests, NUL truncates, TAB and the rest hide in logs
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
SEGMENT_RULE = ("one path segment: not empty, '.' or '..', without '/', '\\', control characters or "
                "percent-encoded forms of them")


def _decodings(value: str, encoding: str = "utf-8") -> list[str]:
    """``value`` and each successive percent-decoding of it (``%252e`` -> ``%2e`` -> ``.``)."""
    out = [value]
    for _ in range(_DECODE_ROUNDS):
        nxt = unquote(out[-1], encoding=encoding, errors="strict") if "%" in out[-1] else out[-1]
        if nxt == out[-1]:
            break
        out.append(nxt)
    return out


def segment_problem(value: str) -> str | None:
    """Why ``value`` cannot be one URL path segment, or ``None`` when it can (case-insensitive on
    encodings: ``%2E%2e`` is ``..``; double encodings are decoded too)."""
    if not value:
        return "is empty"
    try:
        forms = _decodings(value)
    except UnicodeDecodeError:
        return "holds a percent-encoding that is not UTF-8"
    for form in forms:
        if form in (".", ".."):
            return "is '.' or '..' (a relative path step)"
        if "/" in form or "\\" in form:
            return "holds a path separator ('/' or '\\')"
        if _CONTROL.search(form):
            return "holds a control character"
    return None


def segments_problem(value: str) -> str | None:
    """Why ``value`` cannot be a ``/``-separated path of segments (``owner/repo``), or ``None``."""
    if not value:
        return "is empty"
    for part in value.split("/"):
        problem = segment_problem(part)
        if problem:
            return problem
    return None


def path_setting_problem(value: str, kind: str) -> str | None:
    """What is wrong with a setting that becomes part of a URL path: ``kind`` is ``"segment"`` (one
    segment) or ``"segments"`` (``/``-separated, as GitHub's ``owner/repo``); ``None`` when it is fine."""
    if kind == "segment":
        problem = segment_problem(value)
        return f"must be {SEGMENT_RULE}; it {problem}" if problem else None
    problem = segments_problem(value)
    return f"must be '/'-separated path segments, each {SEGMENT_RULE}; one {problem}" if problem else None


def _refuse(name: str, problem: str) -> ValidationFailed:
    # the value itself is not repeated: it is user input that may be long, odd, or invisible
    return ValidationFailed(f"{name} cannot be part of a vendor URL path: it {problem}",
                            fields=[FieldProblem(name, f"must be {SEGMENT_RULE}")])


def vendor_path(template: str, /, **values: object) -> str:
    """``template`` with each ``{name}`` replaced by its value, checked and percent-encoded.

    ``{name}`` is one segment (``quote(value, safe="")``); ``{name/}`` a ``/``-separated path whose
    segments are each checked and encoded (GitHub's ``owner/repo``); ``{name%}`` such a path encoded
    as one segment (GitLab's documented ``acme%2Fwebapp``). A value that is not a safe segment raises
    :class:`ValidationFailed` naming ``name``; nothing is sent.
    """
    def fill(match: re.Match[str]) -> str:
        name, form = match.group(1), match.group(2)
        if name not in values:
            raise KeyError(f"vendor_path: no value for {{{name}}} in {template!r}")
        value = str(values[name])
        if not form:
            if problem := segment_problem(value):
                raise _refuse(name, problem)
            return quote(value, safe="")
        if problem := segments_problem(value):
            raise _refuse(name, problem)
        parts = [quote(part, safe="") for part in value.split("/")]
        return "/".join(parts) if form == "/" else "%2F".join(parts)

    return _PLACEHOLDER.sub(fill, template)


def control_character_in(text: str) -> bool:
    """True when ``text`` holds a control character (C0, DEL, C1), raw or percent-encoded (even twice)."""
    try:
        return any(_CONTROL.search(form) for form in _decodings(text))
    except UnicodeDecodeError:  # not UTF-8 once decoded: judge the bytes (C1 is a UTF-8 notion)
        return any(c < "\x20" or c == "\x7f" for form in _decodings(text, encoding="latin-1") for c in form)


def dot_segment_in(path: str) -> bool:
    """True when ``path`` holds a ``.`` or ``..`` segment in any percent-encoded form, or a
    backslash (which some servers read as ``/``): a path that could climb out of its base."""
    # latin-1 maps every byte to one character, so any encoding decodes and '.', '/', '\\' stay visible
    for form in _decodings(path.split("?", 1)[0], encoding="latin-1"):
        if "\\" in form or any(part in (".", "..") for part in form.split("/")):
            return True
    return False
