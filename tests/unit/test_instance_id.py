"""An installation's id goes into every task's names and labels: a new one must be valid
wherever a runtime puts it, Kubernetes' pod names and label values included."""

from __future__ import annotations

import re
from pathlib import Path

from berth.config import Settings
from berth.server.bootstrap import instance_id

POD_NAME_PART = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
"""What a DNS label allows; a label value allows this and more (upper case, `_`, `.`)."""


def test_new_instance_ids_are_valid_kubernetes_names_and_label_values(tmp_path: Path) -> None:
    made = {instance_id(Settings(data_dir=tmp_path / str(n))) for n in range(200)}
    assert len(made) == 200
    assert [value for value in made if not POD_NAME_PART.match(value)] == []


def test_an_instance_id_is_kept(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = instance_id(settings)
    assert instance_id(settings) == first == (tmp_path / "instance.id").read_text()
