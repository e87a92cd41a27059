"""Settings: every one is read by berth and documented, so none is a knob that does nothing."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from berth.config import Settings

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "berth"
OPERATIONS = ROOT / "docs" / "operations.md"


def _attributes_read_in_source() -> set[str]:
    names: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
    return names


def test_every_setting_and_settings_method_is_read_somewhere() -> None:
    read = _attributes_read_in_source()
    methods = {  # Settings' own methods, not those it inherits from pydantic.
        name for name, value in vars(Settings).items() if callable(value) and name[0] != "_"
    }
    assert {"tls_configured", "resolved_database_url"} <= methods
    unread = sorted((set(Settings.model_fields) | methods) - read)
    assert unread == [], f"settings nothing reads: {unread}"


def test_every_setting_has_a_row_in_the_operations_guide() -> None:
    documented = set(re.findall(r"`(BERTH_[A-Z_]+)`", OPERATIONS.read_text(encoding="utf-8")))
    missing = sorted(f"BERTH_{name.upper()}" for name in Settings.model_fields)
    assert [name for name in missing if name not in documented] == []
