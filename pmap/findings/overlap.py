"""Overlapping a large report import's work across two processes: a parsing process feeds the writer.

An import of a report file is CPU-bound Python on one side (parse, fingerprint, severity pipeline,
row building, COPY encoding) and PostgreSQL's work on the other. With ``PMAP_IMPORT_OVERLAP=1``, for a
report of :data:`OVERLAP_MIN_BYTES` or more on PostgreSQL, :class:`ParsingProcess` moves the whole Python
side into a child process (``python -m pmap.findings.overlap_child``, a fresh interpreter: never a fork
of a server holding threads and a database pool). The child runs the importer's own hot loop
(:func:`pmap.findings.importer._stream_findings`) against stand-ins:

- its writer builds rows and encodes each batch into binary COPY bytes (:class:`~pmap.findings.rows.EncodedRows`):
  a few ``bytes`` per batch cost next to nothing to pickle, and the parent sends them to PostgreSQL as they are.
  Shipping the parsed findings instead and building rows in the parent was measured and not taken: pickling them
  costs the child about what building and encoding does (100,000 .nessus findings: 1.2 s against 1.4 s) and
  unpickling costs the parent 1.2 s more, on a machine whose two cores the database server needs too;
- its background writer ships every call the loop submits as a message ``("call", (method name,
  picklable args))``; the parent applies it to the import's real writer (in its background thread,
  in order), so a writer method added to the loop needs no change here;
- progress reports, log records (a parser fault's traceback too) and, at the end, the loop's summary
  counters, the pipeline's undefined-rule count and the entries skipped by design are messages too.

The parent keeps everything that touches the database: the stream lock, the one transaction,
the writes, resolution and the commit, so the import stays atomic. It also keeps the progress
callback, so a cancellation (the callback raising) stops the import: the child is killed and the
transaction rolled back. A refused report arrives as its :class:`ReportError` (class, format, message,
location) and is raised as the same :class:`~pmap.findings.importer.ReportRejected`; a parser fault
is counted in the parent's :func:`~pmap.findings.formats.base.parser_faults` and its log record
re-emitted there. The child dies with the parent (``PR_SET_PDEATHSIG`` on Linux, and a closed pipe
anywhere) and with the import (killed when the parent leaves the :class:`ParsingProcess` context, whatever
the reason).

Messages are pickles on the child's stdout, read only by the parent that started it. Memory stays
bounded: the child blocks on the pipe while the parent's writer has two batches queued.

Measured (README, ``python -m bench.findings``): on a 2-core machine this is no faster than one process, and it
costs a second process's memory (~90 MB). One process already overlaps PostgreSQL's work with the parse: the
import's writer thread waits on the server's COPY with the GIL released. The critical path is the Python work
(parse, pipeline, rows, encoding), the same CPU seconds in either process, and the second core is the database
server's. So it is off by default (``PMAP_IMPORT_OVERLAP=1`` turns it on); it is kept, tested, for machines where
the database runs elsewhere and for an API that must stay responsive during large imports (the import's Python work
then holds no lock of the server's).

Smaller files (and SQLite, whose writes are TEMP-table inserts the Python side must make itself, and
vendor feeds, which are not files) import in one process: a child costs ~0.55 s of CPU to start (its
imports) and 70-120 MB while it runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pmap.core.settings import get_settings
from pmap.findings.formats.base import HostileReportError, ParserFault, ReportError, count_parser_fault
from pmap.findings.rows import Stream
from pmap.findings.rules_engine import RuleSpec

log = logging.getLogger("pmap.findings.overlap")

#: With ``PMAP_IMPORT_OVERLAP=1`` in the environment, reports at least this large import with a parsing
#: process (PostgreSQL only). Off by default: see the module docstring.
OVERLAP_MIN_BYTES = 8 << 20
PICKLE = pickle.HIGHEST_PROTOCOL  # the child's messages too (pmap.findings.overlap_child)
_REPORT_ERRORS: dict[str, type[ReportError]] = {
    c.__name__: c for c in (ReportError, HostileReportError, ParserFault)}


@dataclass(frozen=True, slots=True)
class ParseJob:
    """What the parsing process needs: the file, the format, the stream its rows belong to and the
    severity pipeline's settings (the rules as stored: the child compiles them again)."""

    path: str
    format_key: str
    stream: Stream
    threshold: str
    vendor: str
    rules: list[RuleSpec]
    batch_size: int
    progress: bool
    parent_pid: int


def wanted(dialect: str, path: Path | None, size: int) -> bool:
    """Whether an import of ``size`` bytes from ``path`` runs its Python side in a parsing process."""
    if path is None or dialect != "postgresql" or not get_settings().import_overlap:
        return False
    return size >= OVERLAP_MIN_BYTES


class ParsingProcess:
    """The child process of one import, started early (its interpreter start-up overlaps the parent's
    set-up: connection, stream lock, rules); :meth:`run` hands it the job. Use as a context manager:
    leaving it kills a child that is still running."""

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parents[2])  # this very code, whatever the cwd
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
        self._proc = subprocess.Popen(  # our own interpreter and module, no shell
            [sys.executable, "-m", "pmap.findings.overlap_child"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=env, close_fds=True)

    def __enter__(self) -> ParsingProcess:
        return self

    def running(self) -> bool:
        """Whether the process is still there (and so can take a job)."""
        return self._proc.poll() is None

    def __exit__(self, *_exc: object) -> None:
        proc = self._proc
        if proc.poll() is None:
            proc.kill()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        proc.wait()

    def run(self, job: ParseJob, submit: Callable[..., None], writer: Any,
            progress: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
        """Run ``job``: apply every writer call the child ships with ``submit(getattr(writer, name),
        *args)`` and report its progress; returns the child's results (``summary``: the loop's
        counters, ``rules_undefined``, ``skipped``). Raises the child's refusal as a :class:`ReportError`."""
        proc = self._proc
        if proc.stdin is None or proc.stdout is None:
            raise RuntimeError("the parsing process has no pipes")
        try:
            pickle.dump(job, proc.stdin, PICKLE)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the child died at start-up: reading says how
        load, out = pickle.load, proc.stdout  # pickles of the child this process started, on its own pipe
        while True:
            try:
                kind, payload = load(out)
            except EOFError:
                raise RuntimeError(f"the import's parsing process ended unexpectedly "
                                   f"(exit status {proc.wait()})") from None
            if kind == "call":
                name, args = payload
                submit(getattr(writer, name), *args)
            elif kind == "progress":
                if progress is not None:
                    progress(payload)
            elif kind == "log":
                _emit(payload)
            elif kind == "done":
                stats = payload.get("stats") or {}
                log.info("the import's parsing process used %.2f s of CPU, peak RSS %.0f MB",
                         stats.get("cpu_seconds", 0.0), stats.get("peak_rss_mb", 0.0), extra={"parsing": stats})
                return dict(payload)
            elif kind == "rejected":
                cls, key, message, location = payload
                if cls == ParserFault.__name__:
                    count_parser_fault(key)
                raise _REPORT_ERRORS.get(cls, ReportError)(key, message, location)
            else:  # "failed": a fault that is neither the report's nor the parser's
                raise RuntimeError(f"the import's parsing process failed:\n{payload}")


def _emit(payload: dict[str, Any]) -> None:
    """Re-emit a log record of the child in this process (its traceback as text)."""
    record = logging.makeLogRecord(payload)
    logger = logging.getLogger(record.name)
    if logger.isEnabledFor(record.levelno):
        logger.handle(record)


_warm = threading.local()


@contextlib.contextmanager
def prestarted(start: bool) -> Iterator[None]:
    """Start the parsing process of an import about to run in this thread, so its interpreter's
    start-up (~0.5 s of CPU) overlaps what comes first (a queued import copying its upload out of the
    database); :func:`take` hands it to the import. Killed on leaving if the import did not use it."""
    if not start:
        yield
        return
    process = ParsingProcess()
    _warm.process = process
    try:
        yield
    finally:
        _warm.process = None
        process.__exit__()


def take() -> ParsingProcess:
    """The parsing process :func:`prestarted` started for this thread, else a new one."""
    process: ParsingProcess | None = getattr(_warm, "process", None)
    _warm.process = None
    return process if process is not None and process.running() else ParsingProcess()
