"""The README's configuration table is the settings' documentation: every setting appears with
its default and description, and nothing else does."""

from __future__ import annotations

import re
from pathlib import Path

from maintflow_core.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `MAINTFLOW_([A-Z0-9_]+)` \| (.+?) \| (.+) \|$")


def shown(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def test_the_readme_table_lists_every_setting_with_its_default_and_meaning() -> None:
    rows = {
        m.group(1).lower(): (m.group(2), m.group(3))
        for line in README.read_text().splitlines()
        if (m := ROW.match(line))
    }
    fields = Settings.model_fields
    assert sorted(rows) == sorted(fields)
    for name, field in fields.items():
        default, meaning = rows[name]
        assert default == shown(field.default), name
        assert meaning == field.description, name
