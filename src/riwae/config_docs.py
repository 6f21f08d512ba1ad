"""config/README.md: every setting of the config, made from the schema's descriptions
(``python -m riwae.config_docs`` from the repository root; a test checks it is current)."""

from pathlib import Path

import yaml

from riwae.config import DEFAULT_CONFIG, SCHEMA

SETTINGS_README = "config/README.md"


def resolved(schema: dict, defs: dict) -> dict:
    """A schema node with its ``$ref`` (into ``$defs``) filled in; its own keys win."""
    if "$ref" not in schema:
        return schema
    name = schema["$ref"].rsplit("/", 1)[-1]
    return {**defs[name], **{k: v for k, v in schema.items() if k != "$ref"}}


def allowed_values(schema: dict, defs: dict) -> str:
    """What the schema accepts, in words: ``integer from 1 to 10000``, ```a`, `b```..."""
    schema = resolved(schema, defs)
    if "enum" in schema:
        return ", ".join(f"`{value}`" for value in schema["enum"])
    if schema.get("type") == "array":
        item = resolved(schema["items"], defs)
        if item.get("type") == "object":
            return "list of settings (below)"
        return f"list of: {allowed_values(item, defs)}"
    words = [schema.get("type", "any value")]
    if "minimum" in schema and "maximum" in schema:
        words.append(f"from {schema['minimum']} to {schema['maximum']}")
    else:
        words += [f"{sign} {schema[key]}" for key, sign in BOUNDS if key in schema]
    if "pattern" in schema:
        words.append(f"matching `{schema['pattern']}`")
    return " ".join(words)


BOUNDS = [("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤")]


def inline_yaml(value) -> str:
    """``value`` as YAML on one line: ``[1, 10, 100]``, ``1.0e-10``, ``auto``."""
    # Dumped inside a one-item flow list, then unwrapped: no document markers, no line breaks.
    return yaml.safe_dump([value], default_flow_style=True, width=10**6).strip()[1:-1]


def settings_rows(schema: dict, defs: dict, defaults, prefix: str = "") -> list[str]:
    """Table rows ``| setting | allowed values | default | description |`` of every leaf
    setting below ``schema``, depth first, in the schema's order."""
    rows = []
    for key, node in schema["properties"].items():
        node = resolved(node, defs)
        name = f"{prefix}{key}"
        default = defaults.get(key) if isinstance(defaults, dict) else None
        item = resolved(node.get("items", {}), defs)
        if node.get("type") == "object":
            rows += settings_rows(node, defs, default, f"{name}.")
        elif node.get("type") == "array" and item.get("type") == "object":
            rows += settings_rows(item, defs, None, f"{name}[].")
        else:
            default = node.get("default") if default is None else default
            shown = "" if default is None else f"`{inline_yaml(default)}`"
            text = " ".join(node.get("description", "").split()).replace("|", "\\|")
            rows.append(f"| `{name}` | {allowed_values(node, defs)} | {shown} | {text} |")
    return rows


def settings_markdown(root=".") -> str:
    """config/README.md: every setting of the schema, its allowed values, its value in
    config/config.yaml and its description, one section per top-level key."""
    root = Path(root)
    schema = yaml.safe_load((root / SCHEMA).read_text())
    defs = schema.get("$defs", {})
    with open(root / DEFAULT_CONFIG) as f:
        defaults = yaml.safe_load(f)
    header = "| setting | allowed values | default | description |\n|---|---|---|---|\n"
    top = {
        k: v for k, v in schema["properties"].items() if "properties" not in v and "items" not in v
    }
    text = (
        "# Settings\n\n"
        f"Made from the descriptions in `{SCHEMA}` by `python -m riwae.config_docs`\n"
        "(run it from the repository root after changing the schema or the default config; a\n"
        "test checks that this file is current).\n\n"
        f"Snakemake reads `{DEFAULT_CONFIG}` (the default run) first, then each `--configfile`\n"
        "over it: a nested section is updated key by key, any other value (a list, a number) is\n"
        "replaced whole. `smoke.yaml` and `paper.yaml` hold only what differs from the default.\n"
        "The default column below is the value in the default config (or the schema's default).\n\n"
        "## Top level\n\n"
        + header
        + "\n".join(settings_rows({"properties": top}, defs, defaults))
        + "\n"
    )
    for key, node in schema["properties"].items():
        if key in top:
            continue
        description = " ".join(node.get("description", "").split())
        rows = settings_rows({"properties": {key: node}}, defs, defaults)
        text += f"\n## `{key}`\n\n{description[0].upper()}{description[1:]}.\n\n"
        if node.get("type") == "array":
            listed = yaml.safe_dump(defaults[key], default_flow_style=None, sort_keys=False)
            text += f"Default:\n\n```yaml\n{listed}```\n\n"
        text += header + "\n".join(rows) + "\n"
    return text


if __name__ == "__main__":
    Path(SETTINGS_README).write_text(settings_markdown())
    print(f"wrote {SETTINGS_README}")
