"""Receive a multipart report upload straight into a spool file under ``PMAP_DATA_DIR``.

The request body is streamed through a multipart parser: the ``file`` part goes to disk chunk by
chunk (never held in memory, never copied through the system temp directory), the few text fields
are kept in memory with a small cap. The size cap itself is the request-size middleware's
(``PMAP_MAX_IMPORT_BYTES``). Whoever receives an :class:`Upload` owns its file and deletes it.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from pmap.core.errors import BadRequestError, FieldProblem, UnsupportedMediaType, ValidationFailed
from pmap.core.files import private_directory
from pmap.core.text import clean_file_name

FIELD_MAX_BYTES = 4096
MAX_PARTS = 16
FILE_FIELD = "file"


@dataclass(slots=True)
class Upload:
    """A received report: the spooled file, the client's file name, its size and the text fields."""

    path: Path
    filename: str | None
    size: int
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        """Delete the spooled file (idempotent)."""
        self.path.unlink(missing_ok=True)


def spool_dir(data_dir: Path) -> Path:
    """The directory uploads are spooled to (created private)."""
    # absolute, so a job's stored path still names the file for a process started elsewhere; one left
    # open to others (by an earlier version, or by hand) is tightened, not only a new one created private
    return private_directory((data_dir / "imports").resolve())


def new_spool_file(directory: Path) -> tuple[Path, IO[bytes]]:
    """A new private spool file, opened for writing."""
    path = directory / f"upload-{uuid.uuid4().hex}.part"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return path, os.fdopen(fd, "wb", buffering=1 << 20)


class _Receiver:
    """python-multipart callbacks: the file part to the spool file, text fields to memory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.fields: dict[str, str] = {}
        self.path: Path | None = None
        self.filename: str | None = None
        self.size = 0
        self.parts = 0
        self.file_complete = False
        self._out: IO[bytes] | None = None
        self._name: str | None = None
        self._buffer = bytearray()
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""

    def callbacks(self) -> dict[str, Any]:
        return {"on_part_begin": self.part_begin, "on_part_data": self.part_data, "on_part_end": self.part_end,
                "on_header_field": self.header_field, "on_header_value": self.header_value,
                "on_header_end": self.header_end, "on_headers_finished": self.headers_finished}

    def part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise BadRequestError("too many parts in the multipart body")
        self._disposition, self._name, self._buffer = b"", None, bytearray()

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def header_end(self) -> None:
        if bytes(self._header_name).lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name, self._header_value = bytearray(), bytearray()

    def headers_finished(self) -> None:
        _kind, options = parse_options_header(self._disposition)
        name = options.get(b"name")
        if name is None:
            raise BadRequestError("a multipart part has no name")
        self._name = name.decode("utf-8", "replace")
        if self._name == FILE_FIELD:
            if self.path is not None:
                raise ValidationFailed("send one file per import", fields=[FieldProblem("file", "was sent twice")])
            raw = options.get(b"filename")
            # the name is metadata only (format detection hint, import record): control characters,
            # which PostgreSQL refuses (NUL) or which forge log lines, and direction overrides, which
            # make "report<U+202E>txt.nessus" read as another name, are dropped
            filename = os.path.basename(raw.decode("utf-8", "replace").replace("\\", "/")) if raw else ""
            self.filename = clean_file_name(filename)
            self.path, self._out = new_spool_file(self.directory)

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self._out is not None and self._name == FILE_FIELD:
            self._out.write(data[start:end])
            self.size += end - start
            return
        self._buffer += data[start:end]
        if len(self._buffer) > FIELD_MAX_BYTES:
            raise ValidationFailed("a form field is too long", fields=[FieldProblem(self._name or "?", "is too long")])

    def part_end(self) -> None:
        if self._name == FILE_FIELD and self._out is not None:
            self._out.close()
            self._out = None
            self.file_complete = True
        elif self._name:
            self.fields[self._name] = self._buffer.decode("utf-8", "replace").strip()

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def discard(self) -> None:
        self.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


async def receive_upload(request: Request, directory: Path) -> Upload:
    """Stream a ``multipart/form-data`` body with a ``file`` part to a spool file in ``directory``.

    415 for another content type, 400 for a malformed body, 422 without a ``file`` part. A client
    that disconnects (or a body cut off by the size cap) leaves nothing behind.
    """
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UnsupportedMediaType("send the report as multipart/form-data with a `file` part")
    receiver = _Receiver(directory)
    try:
        parser = MultipartParser(boundary, receiver.callbacks())  # type: ignore[arg-type]
        async for chunk in request.stream():
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except FormParserError:
        receiver.discard()
        raise BadRequestError("the multipart body is malformed") from None
    except ClientDisconnect:
        # the client went away, or the size cap cut the body off (the 413 is already sent)
        receiver.discard()
        raise BadRequestError("the upload was interrupted before it finished") from None
    except Exception:
        receiver.discard()
        raise
    receiver.close()
    if receiver.path is None:
        raise ValidationFailed("the request has no file", fields=[FieldProblem("file", "is required")])
    if not receiver.file_complete:
        receiver.discard()
        raise BadRequestError("the multipart body ends before the file part does (truncated upload)")
    return Upload(path=receiver.path, filename=receiver.filename, size=receiver.size, fields=receiver.fields)
