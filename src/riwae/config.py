"""Checking a config before any work starts; every problem is one sentence a user can act on.

The JSON schema checks each value on its own (``validation_sentence`` words its errors);
``check_values`` checks what the schema cannot: finiteness, schedules that train nothing,
and work whose memory would exceed the machine. ``check_config_files`` names a config file
that is missing or not valid YAML (Snakemake reads them before the workflow starts).
"""

import math
import os
import sys
from pathlib import Path
from typing import NamedTuple

import yaml

SCHEMA = "workflow/schemas/config.schema.yaml"


class ConfigError(ValueError):
    """A config value that would fail or mislead; the message says which and what to do."""


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
    elif error.validator == "not" and "objective" in error.instance:
        # A model's hyper-parameter that its objective lacks (m, beta).
        keys = ", ".join(repr(key) for key in error.validator_value.get("required", []))
        what = f"{keys} is not a setting of objective {error.instance['objective']!r}; remove it"
    elif error.validator == "pattern" and "description" in error.schema:
        what = f"{error.instance!r} is not allowed: it must be {error.schema['description']}"
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


def in_default_order(config: dict, default: dict) -> dict:
    """``config`` with the keys of every section in the order of ``default`` (then any
    others). Snakemake puts the keys of command-line config files first, and compares params
    as text, key order included: in one order, the same settings are the same params however
    the config files were combined."""
    ordered = {key: config[key] for key in default if key in config}
    ordered.update((key, value) for key, value in config.items() if key not in default)
    return {
        key: in_default_order(value, default[key])
        if isinstance(value, dict) and isinstance(default.get(key), dict)
        else value
        for key, value in ordered.items()
    }


def load_config(path, root=".") -> dict:
    """A config file as the pipeline sees it: config/config.yaml first, then ``path`` over it."""
    root = Path(root)
    with open(root / DEFAULT_CONFIG) as f:
        config = yaml.safe_load(f) or {}
    if Path(path) != Path(DEFAULT_CONFIG):
        with open(root / path if not Path(path).is_absolute() else path) as f:
            config = merge(config, yaml.safe_load(f) or {})
    return config


def finite_numbers_problem(value, path=()) -> str | None:
    """The first number in ``value`` (nested dicts and lists) that is NaN or infinite,
    as a sentence; the schema's bounds do not catch them (NaN compares false to any bound)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"Invalid config at {location(path)}: {value} is not a finite number; use one."
    if isinstance(value, dict):
        children = value.items()
    elif isinstance(value, list):
        children = enumerate(value)
    else:
        return None
    for key, child in children:
        problem = finite_numbers_problem(child, (*path, key))
        if problem:
            return problem
    return None


# Peak memory of decoding, per decoded row: about 4.4 x 784 values were measured (a training
# step, evaluation, a model's posterior on a grid); 5 x 784 leaves a margin.
VALUES_PER_ROW = 5 * 784
SYNTHETIC_WIDTH = 16  # the synthetic targets: a few mixture components of 2D Gaussians
FLOAT32, FLOAT64 = 4, 8


class MemoryNeed(NamedTuple):
    where: str  # the config value that sets it
    what: str
    bytes: int  # rows x width x bytes per value
    on_device: bool  # on the training device (else on the CPU)
    lower: str  # what to lower


def training_needs(config: dict) -> list[MemoryNeed]:
    """The largest tensor of each training group (``riwae.spec.training_groups``): its
    members' draws (padded to the group's most) for a minibatch of a step, or for a batch of
    the held-out pass at each epoch's end, whichever has more images."""
    from riwae.spec import model_specs, training_groups
    from riwae.train import HELDOUT_BATCH

    specs = model_specs(config)
    by_name = {spec.name: spec for spec in specs}
    index = {spec.base_name: i for i, spec in enumerate(s for s in specs if s.first_seed)}
    groups = training_groups(specs, config["training_groups"], config["device"])
    needs = []
    for group, names in groups.items():
        members = [by_name[name].settings for name in names]
        arch = members[0].arch
        k = max(m.training_objective.draws for m in members)  # miwae and piwae draw m x k
        training = config["training"][arch]
        held_out = min(HELDOUT_BATCH, training["heldout_images"])
        if training["batch_size"] >= held_out:
            images, when, setting = training["batch_size"], "a step", "batch_size"
        else:
            images, when, setting = held_out, "the held-out pass", "heldout_images"
        rows = len(members) * k * images
        if len(members) == 1:
            i = index[members[0].base_name]
            blocked = members[0].m is not None
            samples = "m x k" if blocked else "k"
            draws = f"models[{i}].m, models[{i}].k" if blocked else f"models[{i}].k"
            where, lower = f"models[{i}].k", f"{draws} or training.{arch}.{setting}"
            what = (
                f"training {arch} at {samples} = {k} ({samples} x {images} images in {when} = "
                f"{rows} rows)"
            )
        else:
            where = "training_groups"
            lower = f"training_groups (to k or model) or training.{arch}.{setting}"
            what = (
                f"training group {group} ({len(members)} models x k = {k} x {images} images "
                f"in {when} = {rows} rows)"
            )
        needs.append(MemoryNeed(where, what, rows * VALUES_PER_ROW * FLOAT32, True, lower))
    return needs


def memory_needs(config: dict, gpu: bool = False) -> list[MemoryNeed]:
    """The largest tensor of each stage, as rows x width x bytes per value; ``gpu``: with
    training and evaluation on a GPU, whose evaluation takes larger chunks.

    Rough: only what grows with config values is counted; the modules' other fixed sizes
    (500 images per reconstruction batch, 2^13 draws per identity chunk) are floors that no
    config reaches the machine's memory with."""
    from riwae.evaluate import evaluation_batch_size
    from riwae.numeric import decoder_rows

    device = "cuda" if gpu else "cpu"
    # Evaluation: a chunk of draws of the k-sample estimates, and all max(bound_k) draws of a
    # batch at once (for the ELBO).
    chunk = decoder_rows(device)
    what = f"a chunk of {chunk} draws of the evaluation on {'a GPU' if gpu else 'the CPU'}"
    where = "device"
    lower = "it by evaluating on the CPU (device: cpu), whose chunks are 64 times smaller"
    bytes_ = chunk * VALUES_PER_ROW * FLOAT32
    needs = [*training_needs(config), MemoryNeed(where, what, bytes_, True, lower)]
    evaluation = config["evaluation"]
    k = max(evaluation["bound_k"])
    images = evaluation_batch_size(device, evaluation["ll_k"])
    what = f"evaluation at k = {k} ({images} images a batch)"
    where = "evaluation.bound_k"
    needs.append(MemoryNeed(where, what, k * images * VALUES_PER_ROW * FLOAT32, True, where))
    for stage in ("identity", "marginal"):
        k = max(config[stage]["k"])
        bytes_ = k * VALUES_PER_ROW * FLOAT64
        needs.append(MemoryNeed(f"{stage}.k", f"{stage} at k = {k}", bytes_, False, f"{stage}.k"))
    for where in ("marginal.grid_size", "figures.posterior_grid_size"):
        section, key = where.split(".")
        size = config[section][key]
        what = f"a model's posterior on a grid of {size} x {size} points"
        needs.append(MemoryNeed(where, what, size**2 * VALUES_PER_ROW * FLOAT64, False, where))
    figures = config["figures"]
    k = figures["reconstruction_k"]
    rows = k * max(
        figures["metric_draws"] * 500,
        figures["reconstruction_draws"] * figures["reconstruction_digits"],
    )
    what = f"reconstruction from {k} proposals per draw"
    where = "figures.reconstruction_k"
    needs.append(MemoryNeed(where, what, rows * VALUES_PER_ROW * FLOAT32, False, where))
    posterior = config["posterior"]
    k = max(posterior["figure_k"] + posterior["distance_k"])
    where = "posterior.distance_k" if k in posterior["distance_k"] else "posterior.figure_k"
    width = SYNTHETIC_WIDTH + posterior["sample_sets"]  # and the [sample_sets, k] weights
    what = f"q_IW of the synthetic target at k = {k}"
    needs.append(MemoryNeed(where, what, k * width * FLOAT64, False, where))
    appendix = config["appendix"]
    k = max(appendix["k"])
    rows = k * max(appendix["draws"], appendix["sample_sets"])
    what = f"the 1D appendix at k = {k}"
    needs.append(
        MemoryNeed("appendix.k", what, rows * SYNTHETIC_WIDTH * FLOAT64, False, "appendix.k")
    )
    return needs


def machine_memory() -> int:
    """Bytes of memory of this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def strict_integer_problem(config: dict, schema: dict) -> str | None:
    """The first integer setting given as a float, as a sentence. JSON schema counts an
    integral float such as 5.0 as an integer; the pipeline would carry it on as a float
    (a model named ``...-k5.0`` whose training fails), so it is refused."""
    import jsonschema

    base = jsonschema.validators.validator_for(schema)
    strict = jsonschema.validators.extend(
        base,
        type_checker=base.TYPE_CHECKER.redefine(
            "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)
        ),
    )
    for error in strict(schema).iter_errors(config):
        if error.validator == "type" and isinstance(error.instance, float):
            where = location(error.absolute_path)
            return (
                f"Invalid config at {where}: {error.instance!r} is not an integer; write it "
                f"as {int(error.instance)}."
            )
    return None


def trained_identity(spec: dict) -> tuple:
    """What determines the model that a ``models`` entry trains, apart from its name: the
    objective in its simplest form (at k = 1 the VAE and IWAE bounds and their gradients are
    equal; MIWAE and PIWAE with one block are IWAE, MIWAE with one draw a block the VAE
    bound of m draws; CIWAE at beta 0 is IWAE, at 1 the VAE bound), and the estimator
    (without IWAE weights DReG's gradient is STL's)."""
    objective, k = spec["objective"], spec["k"]
    m, beta = spec.get("m"), spec.get("beta")
    if objective in ("miwae", "piwae") and m == 1:
        objective, m = "iwae", None
    if objective == "miwae" and k == 1:
        objective, k, m = "vae", m, None
    if objective == "ciwae" and beta in (0, 1):
        objective, beta = ("iwae" if beta == 0 else "vae"), None
    if objective in ("iwae", "ciwae") and k == 1:
        objective, beta = "vae", None
    estimator = spec.get("estimator", "reparam")
    if objective == "vae" and estimator == "dreg":
        estimator = "stl"
    return spec["arch"], objective, k, m, beta, estimator


def same_model_problem(models: list[dict]) -> str | None:
    """Two entries of ``models`` that train the same model, as a sentence."""
    seen: dict[tuple, int] = {}
    for i, spec in enumerate(models):
        identity = trained_identity(spec)
        if identity in seen:
            return (
                f"Invalid config at models[{i}]: it trains the same model as "
                f"models[{seen[identity]}] (at k = 1 the VAE and IWAE bounds and their "
                f"gradients are equal; see riwae.config.trained_identity); list it once."
            )
        seen[identity] = i
    return None


def check_values(
    config: dict, memory: int, gpu: int | None = None, schema: dict | None = None
) -> None:
    """Raise ``ConfigError`` for what the schema cannot see: a non-finite number, an integer
    setting written as a float (given the ``schema``), two entries of ``models`` that train
    the same model, a schedule that trains nothing, or work needing more than ``memory``
    bytes (``gpu`` bytes, the GPU's memory, for training and evaluation when they run on a
    GPU; None where no GPU is visible, as on a cluster's login node)."""
    problem = (
        finite_numbers_problem(config)
        or (strict_integer_problem(config, schema) if schema else None)
        or same_model_problem(config["models"])
    )
    if problem:
        raise ConfigError(problem)
    for arch, settings in config["training"].items():
        count = "epochs" if settings["schedule"] == "constant" else "stages"
        if settings[count] == 0:
            raise ConfigError(
                f"Invalid config at training.{arch}.{count}: 0 {count} with schedule: "
                f"{settings['schedule']} trains nothing; set {count} to 1 or more."
            )
    for need in memory_needs(config, gpu is not None):
        on_gpu = need.on_device and gpu is not None
        limit, machine = (gpu, "this machine's GPU") if on_gpu else (memory, "this machine")
        if need.bytes > limit:
            raise ConfigError(
                f"Invalid config at {need.where}: {need.what} needs about "
                f"{need.bytes / 1e9:.3g} GB of memory, more than the {limit / 1e9:.3g} GB of "
                f"{machine}; lower {need.lower}."
            )


def check_config_files(paths) -> None:
    """Raise ``ConfigError`` naming the first config file that is missing or not valid YAML."""
    for path in paths:
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise ConfigError(
                f"Config file {path} cannot be read ({error.strerror}); check the path given "
                f"to --configfile."
            ) from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(error, "problem", None) or "syntax error"
            raise ConfigError(
                f"Config file {path} is not valid YAML{where} ({problem}); fix it there."
            ) from None
        if not isinstance(loaded, dict | None):
            raise ConfigError(f"Config file {path} must hold keys and values at its top level.")


def configfile_arguments(args: list[str]) -> list[str]:
    """The config files a Snakemake command line names (``--configfile=a`` takes one file,
    ``--configfile a b`` every word up to the next option), as Snakemake reads them."""
    files, taking = [], False
    for arg in args:
        name, _, value = arg.partition("=")
        if name in ("--configfile", "--configfiles"):
            taking = not value
            files += [value] if value else []
        elif arg.startswith("-"):
            taking = False
        elif taking:
            files.append(arg)
    return files


if __name__ == "__main__":
    # `python -m riwae.config <snakemake arguments>`: check the config files before Snakemake
    # reads them (it would say only that "a config file" is not valid YAML).
    try:
        check_config_files([DEFAULT_CONFIG, *configfile_arguments(sys.argv[1:])])
    except ConfigError as error:
        sys.exit(str(error))
