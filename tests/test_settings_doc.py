"""docs/settings.md names every setting of TrainConfig, and only real ones: the page cannot drift from the code."""

import dataclasses
import re
from pathlib import Path

from atm_min.machinery.config import TrainConfig

DOC = Path(__file__).resolve().parents[1] / "docs" / "settings.md"


def test_settings_page_lists_every_setting_and_only_those():
    rows = [line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("| `")]
    named = {n for row in rows for n in re.findall(r"`(\w+)`", row.split("|")[1])}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert fields - named == set(), "settings missing from docs/settings.md"
    assert named - fields == set(), "docs/settings.md names settings TrainConfig does not have"
