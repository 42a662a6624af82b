"""``pmapctl import``: upload a report over HTTP, follow its background job, print the summary."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO, Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

POLL_SECONDS = 0.2  # the summary prints at most this long after the import ends (a poll costs the API ~2 ms)
SUMMARY_FIELDS = ("format", "scope", "parsed", "kept", "filtered_out", "created", "updated", "resolved", "reopened",
                  "suppressed", "unknown_severity", "merged", "covered", "rules_applied")


class CliError(Exception):
    """A failure to report to the user (message already readable); exit code 1."""


class _CountingFile:
    """A file httpx can stream (length via fileno, rewind via seek) that reports bytes read."""

    def __init__(self, fh: IO[bytes], progress: Progress | None, task: TaskID | None) -> None:
        self._fh, self._progress, self._task = fh, progress, task

    def fileno(self) -> int:
        return self._fh.fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=0)
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, len(data))
        return data


def _api_error(response: httpx.Response) -> str:
    try:
        err = response.json()["error"]
        fields = "; ".join(f"{f['field']}: {f['reason']}" for f in err.get("fields") or [])
        where = f" [{fields}]" if fields and fields not in err["message"] else ""
        return f"{err['message']}{where} (HTTP {response.status_code})"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:300]}"


def _wait(client: httpx.Client, job: dict[str, Any], progress: Progress | None) -> dict[str, Any]:
    task = progress.add_task("importing", total=job["progress"].get("bytes_total") or None) if progress else None
    while True:
        response = client.get(f"/api/v1/jobs/{job['id']}")
        if response.status_code != 200:
            raise CliError(_api_error(response))
        job = response.json()
        if progress is not None and task is not None:
            done = job["progress"].get("bytes_read", 0)
            found = job["progress"].get("findings", 0)
            progress.update(task, completed=done, description=f"importing ({found} findings)")
        if job["status"] == "succeeded":
            return job["result"]
        if job["status"] == "failed":
            error = job.get("error") or {}
            raise CliError(f"the import job failed: {error.get('message', 'unknown error')}")
        time.sleep(POLL_SECONDS)


def upload_report(path: Path, integration: str, *, url: str, token: str, fmt: str | None = None,
                  scope: str | None = None, full: bool = True, resolve: str | None = None,
                  show_progress: bool = False, console: Console | None = None) -> dict[str, Any]:
    """Upload ``path``, wait for a background job if the API starts one, and return the summary."""
    data = {k: v for k, v in (("format", fmt), ("scope", scope), ("resolve", resolve)) if v}
    if not full:
        data["full"] = "false"
    progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                        console=console, transient=True) if show_progress else None
    timeout = httpx.Timeout(30.0, read=600.0)  # a synchronous import of a few MB may take a while
    try:
        with (httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout) as client,
              open(path, "rb") as fh, (progress or _Null())):
            task = progress.add_task("uploading", total=path.stat().st_size) if progress else None
            body = _CountingFile(fh, progress, task)
            response = client.post(f"/api/v1/integrations/{integration}/imports",
                                   files={"file": (path.name, body)}, data=data)  # type: ignore[dict-item]
            if response.status_code == 202:
                return _wait(client, response.json()["job"], progress)
            if response.status_code != 200:
                raise CliError(_api_error(response))
            return response.json()
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach PMAP at {url}: {exc}") from None


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def render_summary(summary: dict[str, Any], *, as_json: bool, console: Console) -> None:
    """Print the summary: JSON on stdout, or a table."""
    if as_json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return
    table = Table(title="import summary")
    table.add_column("field")
    table.add_column("value", justify="right")
    for name in ("import_id", *SUMMARY_FIELDS):
        table.add_row(name, escape(str(summary.get(name, ""))))  # the scope is the uploader's text
    console.print(table)
    for warning in summary.get("warnings") or []:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
