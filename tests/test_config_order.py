"""The same settings give the same params however the config files were combined."""

import copy
import json

import yaml
from snakemake.utils import update_config

from conftest import ROOT
from riwae.config import DEFAULT_CONFIG, in_default_order, load_config


def merged_as_snakemake_does(command_line: dict, default: dict) -> dict:
    """Snakemake starts from the command-line config files, merges the Snakefile's
    `configfile:` into that, then the command-line files again: their keys come first."""
    config = copy.deepcopy(command_line)
    update_config(config, copy.deepcopy(default))
    update_config(config, copy.deepcopy(command_line))
    return config


def test_a_delta_config_and_the_full_config_give_the_same_params_text():
    default = yaml.safe_load((ROOT / DEFAULT_CONFIG).read_text())
    delta = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    full = load_config("config/smoke.yaml", root=ROOT)
    from_delta = merged_as_snakemake_does(delta, default)
    from_full = merged_as_snakemake_does(full, default)
    assert from_delta == from_full
    assert json.dumps(from_delta) != json.dumps(from_full)  # the keys in another order
    assert json.dumps(in_default_order(from_delta, default)) == json.dumps(
        in_default_order(from_full, default)
    )
    assert list(in_default_order(from_delta, default)) == list(default)
