"""CSV downloads of the API's tables (``format=csv``): what a spreadsheet user asks for.

RFC 4180 text with a header row, UTF-8, as an attachment. A cell that a
spreadsheet would read as a formula (starting with ``= + - @``, a tab or a
carriage return: a caller's display name is the caller's to choose) is
prefixed with ``'``, the OWASP advice against CSV injection. Numbers stay
numbers; ``None`` is an empty cell; lists are joined with ``>``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

from aiohttp import web

__all__ = ["csv_cell", "csv_response", "csv_stream"]

_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    if isinstance(value, list | tuple):
        value = ">".join(str(v) for v in value)
    elif isinstance(value, dict):
        value = ";".join(f"{k}={v}" for k, v in value.items())
    text = str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def _lines(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([csv_cell(row.get(column)) for column in columns])
    return out.getvalue()


def _headers(filename: str) -> dict[str, str]:
    return {
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "private, no-store",
    }


def csv_response(
    filename: str, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]
) -> web.Response:
    """A whole table at once (reports are small)."""
    text = ",".join(columns) + "\r\n" + _lines(columns, rows)
    return web.Response(body=text.encode(), headers=_headers(filename))


async def csv_stream(
    request: web.Request,
    filename: str,
    columns: Sequence[str],
    pages: AsyncIterator[list[dict[str, Any]]],
) -> web.StreamResponse:
    """A table written page by page, so a month of calls never sits in memory."""
    response = web.StreamResponse(headers=_headers(filename))
    await response.prepare(request)
    await response.write((",".join(columns) + "\r\n").encode())
    async for page in pages:
        await response.write(_lines(columns, page).encode())
    await response.write_eof()
    return response
