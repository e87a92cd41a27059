"""Every dashboard template compiles: a syntax error would otherwise surface only as a 500
on the page that uses it, found by whichever browser test happens to visit it."""

from __future__ import annotations

import pytest

from berth.dashboard.render import ENV, TEMPLATES

NAMES = sorted(path.name for path in TEMPLATES.glob("*.html"))


def test_the_templates_are_found() -> None:
    assert "base.html" in NAMES and "operator_user.html" in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_a_template_compiles(name: str) -> None:
    ENV.get_template(name)
