"""RE2 patterns of rule conditions, checked one by one and matched together: one pass per field value.

Why: each ``.matches()`` used to own an RE2 set and scan its text alone, so 200 regex rules over
``description`` scanned every finding's description 200 times (~650 us per finding on 1 KB texts).
An RE2 set matches all its patterns in one pass at about the cost of one, so every pattern of a
rule set that reads the same field goes into one :class:`RegexBank`: the first rule that needs the
field's value runs the pass, the others read the remembered answer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import re2

MAX_REGEX_CHARS = 512
PATTERN_MAX_MEM = 1 << 20  # a pattern whose automaton needs more is refused, not run
_BANK_MAX_MEM = 64 << 20  # a bank gets each pattern's budget, up to this; RE2 allocates lazily
_MEMO_MAX = 4096  # per bank: titles and hosts repeat across findings
_MEMO_KEY_MAX = 512  # longer texts (descriptions) are matched, not remembered
_NONE: frozenset[int] = frozenset()


def _options(max_mem: int) -> re2.Options:
    options = re2.Options()
    options.log_errors = False
    options.never_capture = True
    options.max_mem = max_mem
    return options


def pattern_size(pattern: str) -> int:
    """RE2's program size (instructions) of a valid pattern; raises ValueError naming the problem."""
    if len(pattern) > MAX_REGEX_CHARS:
        raise ValueError(f"regular expression is longer than {MAX_REGEX_CHARS} characters")
    try:
        return int(re2.compile(pattern, _options(PATTERN_MAX_MEM)).programsize)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(f"invalid regular expression (RE2 syntax): {detail}") from None


def _search_set(patterns: list[str], max_mem: int) -> re2.Set:
    matcher = re2.Set.SearchSet(_options(max_mem))  # its Match is ~5x cheaper than re2.search per call
    for pattern in patterns:
        matcher.Add(pattern)
    matcher.Compile()
    return matcher


class RegexBank:
    """Patterns matched together against one text: ``hits(text)`` is the set of indices that match.

    Safe to share between threads: the set is built once under a lock, and the last answer is one
    tuple replaced atomically.
    """

    def __init__(self) -> None:
        self._patterns: list[str] = []
        self._index: dict[str, int] = {}
        self._match: object = None  # text -> frozenset of indices, once sealed
        self._last: tuple[object, frozenset[int]] = (None, _NONE)
        self._memo: dict[str, frozenset[int]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._patterns)

    def add(self, pattern: str) -> int:
        """Register a pattern (checked with :func:`pattern_size` first); returns its index."""
        known = self._index.get(pattern)
        if known is not None:  # the same pattern in two rules is searched once
            return known
        if self._match is not None:
            raise RuntimeError("the bank is sealed")
        self._patterns.append(pattern)
        self._index[pattern] = len(self._patterns) - 1
        return self._index[pattern]

    def seal(self) -> None:
        """Build the matcher now (else the first match does); never fails for checked patterns."""
        with self._lock:
            if self._match is None:
                self._match = self._build()

    def _build(self) -> object:
        patterns = list(self._patterns)
        try:
            matcher = _search_set(patterns, min(_BANK_MAX_MEM, PATTERN_MAX_MEM * max(1, len(patterns))))
            match = matcher.Match

            def together(text: str) -> frozenset[int]:
                found = match(text)
                return frozenset(found) if found else _NONE

            return together
        except re2.error:  # too large together: one set per pattern, as each was checked alone
            singles = [_search_set([p], PATTERN_MAX_MEM).Match for p in patterns]

            def apart(text: str) -> frozenset[int]:
                return frozenset(i for i, m in enumerate(singles) if m(text) is not None)

            return apart

    def hits(self, text: str) -> frozenset[int]:
        """Indices of the patterns found in ``text`` (an unanchored search)."""
        last = self._last
        if last[0] == text:  # the other rules reading this field of the same finding
            return last[1]
        found = self._memo.get(text)
        if found is None:
            if self._match is None:
                self.seal()
            found = self._match(text)  # type: ignore[operator]
            if len(self._memo) < _MEMO_MAX and len(text) <= _MEMO_KEY_MAX:
                self._memo[text] = found
        self._last = (text, found)
        return found


class RegexBanks:
    """What the conditions of one rule set share: one :class:`RegexBank` per field (or ``exists``
    variable) their patterns read, and other per-finding work such as a field's case conversion."""

    def __init__(self) -> None:
        self._banks: dict[str, RegexBank] = {}
        self._shared: dict[tuple[str, str], Callable[[Any], Any]] = {}

    def shared(self, key: tuple[str, str], make: Callable[[], Callable[[Any], Any]]) -> Callable[[Any], Any]:
        """The closure registered under ``key``, made by ``make`` the first time."""
        fn = self._shared.get(key)
        if fn is None:
            fn = self._shared[key] = make()
        return fn

    def for_field(self, name: str | None) -> RegexBank:
        """The shared bank of ``name``; a private one for text that is computed (``lowerAscii()``)."""
        if name is None:
            return RegexBank()
        bank = self._banks.get(name)
        if bank is None:
            bank = self._banks[name] = RegexBank()
        return bank

    def seal(self) -> None:
        """Build every shared bank's matcher before the first finding is evaluated."""
        for bank in self._banks.values():
            bank.seal()
