"""Turning config validation errors into one sentence a user can act on."""

SCHEMA = "workflow/schemas/config.schema.yaml"


def location(path) -> str:
    """A JSON path such as ``models[0].k`` from jsonschema's deque of keys and indices."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the top level"


def validation_sentence(error) -> str:
    """One sentence for a jsonschema ValidationError: where, what is wrong, how to fix it."""
    where = location(error.absolute_path)
    if error.validator == "additionalProperties":
        known = ", ".join(sorted(error.schema.get("properties", {})))
        what = f"{error.message}; known keys are {known}"
    elif error.validator == "enum":
        choices = ", ".join(repr(c) for c in error.validator_value)
        what = f"{error.instance!r} is not one of {choices}"
    else:
        what = error.message
    return (
        f"Invalid config at {where}: {what}. Fix the config file or the --config value "
        f"(the allowed values are described in {SCHEMA})."
    )


DEFAULT_CONFIG = "config/config.yaml"


def merge(base: dict, delta: dict) -> dict:
    """``base`` updated recursively by ``delta``, as Snakemake merges config files."""
    merged = dict(base)
    for key, value in delta.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(path, root=".") -> dict:
    """A config file as the pipeline sees it: config/config.yaml first, then ``path`` over it."""
    from pathlib import Path

    import yaml

    root = Path(root)
    with open(root / DEFAULT_CONFIG) as f:
        config = yaml.safe_load(f) or {}
    if Path(path) != Path(DEFAULT_CONFIG):
        with open(root / path if not Path(path).is_absolute() else path) as f:
            config = merge(config, yaml.safe_load(f) or {})
    return config
