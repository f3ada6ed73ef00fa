"""Target lists as CSV, the way people keep them in a spreadsheet: a `label,notes` header (or
just `label`), UTF-8 with or without a byte-order mark, quoted fields as Python's csv module
reads them. Every row is checked as a JSON target would be, and an error names its line."""

from __future__ import annotations

import csv
import io
from typing import Any

from pydantic import ValidationError

from maintflow_core.errors import InvalidField
from maintflow_core.schemas.targets import Target

HEADER = ("label", "notes")
MEDIA_TYPE = "text/csv"


def _bad(line: int, message: str) -> InvalidField:
    return InvalidField(f"line {line}", f"line {line}: {message}")


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _bad(data[: exc.start].count(b"\n") + 1, "not UTF-8") from None


def _target(row: list[str], line: int) -> dict[str, Any]:
    if len(row) > len(HEADER):
        raise _bad(line, f"{len(row)} fields; expected at most 2 (label,notes)")
    fields = {"label": row[0], "notes": row[1] if len(row) > 1 and row[1] != "" else None}
    try:
        return Target.model_validate(fields).model_dump(exclude_none=True)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise _bad(line, f"{error['loc'][0]}: {error['msg']}") from None


def read_targets(data: bytes) -> list[dict[str, Any]]:
    """The targets of a CSV document, in order; InvalidField("line N", ...) at the first bad
    line (encoding, header, field count, a label or notes outside the rules, a label twice).
    Blank lines are skipped."""
    reader = csv.reader(io.StringIO(_text(data), newline=""), strict=True)
    targets: list[dict[str, Any]] = []
    first_seen: dict[str, int] = {}
    try:
        header = next(reader, None)
        names = tuple(name.strip().lower() for name in header or ())
        if names not in (HEADER, HEADER[:1]):
            raise _bad(1, f"expected the header 'label,notes', got {','.join(header or [])!r}")
        for row in reader:
            line = reader.line_num
            if not row or row == [""]:
                continue
            target = _target(row, line)
            if target["label"] in first_seen:
                raise _bad(
                    line,
                    f"label {target['label']!r} appears twice (first on line "
                    f"{first_seen[target['label']]})",
                )
            first_seen[target["label"]] = line
            targets.append(target)
    except csv.Error as exc:
        raise _bad(reader.line_num, str(exc)) from None
    return targets


def write_targets(targets: list[dict[str, Any]]) -> bytes:
    """The CSV document of a list's targets: the header, then one row per target."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows((t["label"], t.get("notes") or "") for t in targets)
    return out.getvalue().encode()
