"""The parsing process of an import (``python -m pmap.findings.overlap_child``): the child side of
:mod:`pmap.findings.overlap`.

It reads one :class:`~pmap.findings.overlap.ParseJob` from stdin, runs the importer's own hot loop
(:func:`pmap.findings.importer._stream_findings`) on the report with stand-ins for the writer and its thread
that ship each writer call, progress, log records and the summary fields the loop changed to the parent as
pickles on stdout, and exits. It is never imported by the service: a module of its own, so that the parent
side (which the importer imports) and this side (which imports the importer) form no import cycle. Its heavy
imports run at module start, while the parent connects and loads the rules.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import pickle
import resource
import signal
import sys
import traceback
from collections import Counter
from collections.abc import Callable
from typing import IO, Any

from pmap.findings.formats.registry import report_formats
from pmap.findings.importer import FindingSource, ImportSummary, ReportRejected, _stream_findings
from pmap.findings.overlap import PICKLE, ParseJob
from pmap.findings.rows import Row, RowBuilder, RowEncoder, Stream
from pmap.findings.severity import SeverityPipeline, compile_rule_set


class _Shipper:
    """The child's stand-in for :class:`~pmap.findings.batching.BackgroundWriter`: ``submit(fn, *args)``
    ships ``fn(*args)``, the message a :class:`_RemoteWriter` method returns."""

    def __init__(self, send: Callable[[Any], None]) -> None:
        self._send = send

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._send(("call", fn(*args)))


class _RemoteWriter:
    """The child's stand-in for the import's writer: ``build`` makes rows as the real one does;
    ``write`` encodes a batch for COPY; any other method becomes a message naming it."""

    def __init__(self, stream: Stream) -> None:
        self.build = RowBuilder(stream, binary=True)
        self._encode = RowEncoder()

    def write(self, rows: list[Row]) -> tuple[str, tuple[Any, ...]]:
        return "write", (self._encode(rows),)

    def __getattr__(self, name: str) -> Callable[..., tuple[str, tuple[Any, ...]]]:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args: (name, args)


class _ShipLogs(logging.Handler):
    def __init__(self, send: Callable[[Any], None]) -> None:
        super().__init__(logging.INFO)
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip() if record.exc_info else None
        self._send(("log", {"name": record.name, "levelno": record.levelno, "levelname": record.levelname,
                            "msg": record.getMessage(), "exc_text": exc_text or record.exc_text,
                            "pathname": record.pathname, "lineno": record.lineno, "funcName": record.funcName}))


def _stats() -> dict[str, float]:
    """This process's CPU seconds (user + system) and peak RSS (VmHWM, MB)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak = usage.ru_maxrss / 1024
    with contextlib.suppress(OSError), open("/proc/self/status", encoding="ascii", errors="replace") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return {"cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_rss_mb": peak}


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to kill this process when its parent dies (and check it has not died already)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        os._exit(1)


def _child(stdin: IO[bytes], out: IO[bytes]) -> None:
    dump = pickle.dump

    def send(message: Any) -> None:
        dump(message, out, PICKLE)

    job: ParseJob = pickle.load(stdin)  # noqa: S301  # from the parent that started this process
    _die_with_parent(job.parent_pid)
    logging.getLogger().addHandler(_ShipLogs(send))
    logging.getLogger().setLevel(logging.INFO)
    try:
        fmt = report_formats()[job.format_key]
        pipeline = SeverityPipeline(fmt, job.threshold, compile_rule_set(job.rules), vendor=job.vendor,
                                    integration_id=str(job.stream.integration_id))
        summary = ImportSummary(import_id=str(job.stream.import_id), format=fmt.key, scope=job.stream.scope)
        size = os.stat(job.path).st_size
        with open(job.path, "rb", buffering=1 << 20) as fh:
            fd, skipped, covered = fh.fileno(), Counter[str](), set[str]()
            source = FindingSource(fmt, fmt.parse(fh, skipped, covered), size=size,
                                   position=lambda: min(size, os.lseek(fd, 0, os.SEEK_CUR)), skipped=skipped,
                                   covered=covered)
            report = (lambda p: send(("progress", p))) if job.progress else None
            _stream_findings(source, pipeline, _Shipper(send), _RemoteWriter(job.stream), summary,  # type: ignore[arg-type]
                             report, job.batch_size)
        # what the loop changed of the summary (the parent set the rest: ids, options, rules)
        fresh = ImportSummary(import_id=summary.import_id, format=fmt.key, scope=job.stream.scope).as_dict()
        send(("done", {"summary": {k: v for k, v in summary.as_dict().items() if v != fresh[k]},
                       "rules_undefined": pipeline.rules_undefined, "skipped": dict(skipped),
                       "stats": _stats()}))
    except ReportRejected as exc:
        err = exc.report_error
        send(("rejected", (type(err).__name__, err.format_key, err.message, err.location)))
    except BrokenPipeError:
        os._exit(1)  # the parent is gone
    except BaseException:
        send(("failed", traceback.format_exc()))
    out.flush()


def main() -> None:
    """Entry point of the parsing process: the job on stdin, messages on stdout (stray prints go to stderr)."""
    out = os.fdopen(os.dup(1), "wb", buffering=1 << 16)
    os.dup2(2, 1)
    try:
        _child(sys.stdin.buffer, out)
    except BrokenPipeError:
        os._exit(1)


if __name__ == "__main__":
    main()
