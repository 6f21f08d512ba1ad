"""config/README.md documents every setting, from the schema's descriptions."""

import yaml

from conftest import ROOT
from riwae.config import DEFAULT_CONFIG
from riwae.config_docs import SETTINGS_README, settings_markdown


def leaf_settings(value, prefix=""):
    """Dotted names of every leaf setting of a config; list items as ``name[].key``."""
    if isinstance(value, dict):
        return {n for key, v in value.items() for n in leaf_settings(v, f"{prefix}{key}.")}
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        return {n for item in value for n in leaf_settings(item, f"{prefix[:-1]}[].")}
    return {prefix[:-1]}


def test_config_readme_is_current():
    assert (ROOT / SETTINGS_README).read_text() == settings_markdown(ROOT), (
        f"{SETTINGS_README} is out of date: run `python -m riwae.config_docs` from the "
        "repository root"
    )


def test_every_setting_of_the_default_config_is_described():
    rows = [line for line in settings_markdown(ROOT).splitlines() if line.startswith("| `")]
    described = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split(" | ")]
        described[cells[0].strip("`")] = cells[-1]
    config = yaml.safe_load((ROOT / DEFAULT_CONFIG).read_text())
    settings = leaf_settings(config)
    assert settings <= set(described), settings - set(described)
    assert all(described.values()), [name for name, text in described.items() if not text]
