"""The suite's own layout: no test module imports another test module.

A helper one test module needs from another belongs in `tests/support` (or, for a tier's
fixtures, its conftest.py): imported from a test module, it drags that module's fixtures and
import-time work along, and hides what is shared.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def imports_of_test_modules(source: str) -> list[str]:
    """The modules named `test_*` (by their last part) that `source` imports."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom):  # `from . import test_x`, `from .test_x import y`
            base = "." * node.level + (node.module or "")
            modules = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        found += [m for m in modules if m.rsplit(".", 1)[-1].startswith("test_")]
    return found


def test_the_scan_sees_every_form_of_import() -> None:
    package = "tests.integration"  # Kept apart so that a grep for such imports finds none here.
    source = (
        f"import {package}.test_cli\n"
        f"from {package}.test_cli import ok\n"
        f"from {package} import test_cli\n"
        "from .test_cli import ok\n"
        "from tests.support.cli import ok\n"
        "import pytest\n"
    )
    assert imports_of_test_modules(source) == [
        "tests.integration.test_cli",
        "tests.integration.test_cli",
        "tests.integration.test_cli",
        ".test_cli",
    ]


def test_no_test_module_imports_another_test_module() -> None:
    offenders = {
        str(path.relative_to(TESTS.parent)): imported
        for path in sorted(TESTS.rglob("test_*.py"))
        if (imported := imports_of_test_modules(path.read_text()))
    }
    assert offenders == {}, (
        "test modules importing other test modules (move what they share to tests/support): "
        f"{offenders}"
    )
