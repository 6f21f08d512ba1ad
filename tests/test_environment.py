"""pyproject.toml is the one list of dependencies; environment.yml must name the same ones."""

import re
import tomllib

import yaml

from conftest import ROOT

CONDA_NAMES = {"pytorch": "torch"}  # conda-forge name -> PyPI name
CONDA_ONLY = {"python", "pip"}


def name_of(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_names_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pypi = {name_of(r) for r in project["dependencies"]}
    pypi |= {name_of(r) for extra in project["optional-dependencies"].values() for r in extra}
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {name_of(d) for d in environment["dependencies"] if isinstance(d, str)}
    conda = {CONDA_NAMES.get(name, name) for name in conda - CONDA_ONLY}
    assert conda == pypi
