import glob
import os
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from riwae import stages
from riwae.config import (
    DEFAULT_CONFIG,
    SCHEMA,
    ConfigError,
    check_values,
    in_default_order,
    load_config,
    machine_memory,
    validation_sentence,
)
from riwae.io import UserError, hold_run_lock
from riwae.device import (
    tf32_override_problem,
    uses_gpu,
    visible_gpu_count,
    visible_gpu_memory,
)
from riwae.spec import model_specs, training_groups, training_priorities


def run_name():
    """The run's name: --config run=..., else the `run:` of the last config file given on
    the command line, else that file's own name; with no config file given, the `run:` of
    config/config.yaml. (The default config is always read first, so a file without `run:`
    would otherwise inherit its name and write into its folder.)"""
    settings = workflow.config_settings
    if "run" in settings.config or not settings.configfiles:
        return config.get("run")
    last = Path(settings.configfiles[-1])
    with open(last) as f:
        return (yaml.safe_load(f) or {}).get("run", last.stem)


config["run"] = run_name()
try:
    validate(config, "../schemas/config.schema.yaml")
except WorkflowError as error:
    # Snakemake raises this while handling jsonschema's ValidationError: say it in one sentence.
    cause = error.__cause__ or error.__context__
    if not hasattr(cause, "absolute_path"):
        raise
    raise WorkflowError(validation_sentence(cause)) from None

# The same settings, the same params: sections in the default config's key order.
ordered = in_default_order(config, load_config(DEFAULT_CONFIG, root=workflow.basedir))
config.clear()
config.update(ordered)

# Every artifact of a run lives under results/<run>/; the schema keeps <run> one folder
# name (no path separator, not '.' or '..'), so nothing is written outside it.
RUN = f"results/{config['run']}"


for arch in sorted(
    {spec["arch"] for spec in config["models"]} - set(config["training"])
):
    raise WorkflowError(
        f"Invalid config at training: no settings for architecture {arch!r}, which models "
        f"uses; add training.{arch}."
    )

# Every model of the run from each of `seeds` (riwae.spec.ModelSpec): training, evaluation,
# the Burda table and the reconstruction metric use them all. MODELS are those of the first
# seed, which keep the plain name: every figure and check uses these. A model is 2D when its
# architecture is (one stochastic layer of two units), whatever its name.
REPLICATES = model_specs(config)
MODELS = [spec for spec in REPLICATES if spec.first_seed]
REPLICATES_2D = [spec for spec in REPLICATES if spec.architecture.is_2d]
MODELS_2D = [spec for spec in MODELS if spec.architecture.is_2d]
SPECS = {spec.name: spec for spec in REPLICATES}


def names(specs):
    return [spec.name for spec in specs]


def as_params(specs):
    """Specs as params: plain data, which Snakemake compares as text to decide reruns."""
    return [spec.as_dict() for spec in specs]


if MODELS_2D and config["figures"]["reconstruction_model"] not in names(MODELS_2D):
    raise WorkflowError(
        f"Invalid config at figures.reconstruction_model: "
        f"{config['figures']['reconstruction_model']!r} is not a 2D model of models; "
        f"use one of {', '.join(names(MODELS_2D))}."
    )


def train_settings(name):
    """Everything that determines a trained model: a change reruns its training."""
    return SPECS[name].settings.as_dict()


# The values of each wildcard of the rules: every output pattern of a rule expands over
# them (artifacts() below). A rule with a wildcard of another name needs its values here.
# The models whose gradient SNR is measured (workflow/rules/snr.smk), by name.
SNR_MODELS = config["snr"]["models"]
WILDCARDS = {
    "model": names(REPLICATES),
    "model2d": names(MODELS_2D),
    "replicate2d": names(REPLICATES_2D),
    "snr_model": SNR_MODELS,
}


# The run's own records, made from every artifact: not artifacts themselves.
RECORDS = ("manifest", "notebook", "html_report")


def artifacts(wildcards=None):
    """Every file of the run that the rules make: each output under results/<run>/ of each
    of them but the records, for every value of its wildcards (WILDCARDS). The manifest hashes
    them, the notebook and the report show them, and `all` asks for them. Derived from the
    rules when the jobs are planned, after every rule file is read, so a new rule's outputs are
    here with nothing to list (tests/test_workflow.py checks it)."""
    files = []
    for maker in workflow.rules:
        if maker.name in RECORDS:
            continue
        unknown = set(maker.wildcard_names) - set(WILDCARDS)
        if unknown:
            raise WorkflowError(
                f"Rule {maker.name} has the wildcard {unknown.pop()}, whose values are not in "
                f"WILDCARDS (workflow/rules/common.smk); add them there."
            )
        values = {name: WILDCARDS[name] for name in maker.wildcard_names}
        for pattern in maker.output:
            if str(pattern).startswith(f"{RUN}/"):
                files += expand(str(pattern), **values)
    return files


def settings_of(section, *keys):
    """The settings ``keys`` of the config's ``section``: a stage's params hold only what
    it reads, so that changing another setting does not rerun it."""
    return {key: config[section][key] for key in keys}


# Models that train together as one stacked network, by group name (riwae.spec.training_groups):
# from the config alone, so that every machine reading this file finds the same rules.
GROUPS = training_groups(REPLICATES, config["training_groups"], config["device"])

# Snakemake runs the ready jobs of higher priority first. Training groups by
# riwae.spec.training_priorities (2D models first, then the longest); above them, the
# evaluation and the long stages on the 2D models, which then run beside the other training
# jobs instead of after them all, with one core idle. Other jobs are short: priority 0.
TRAINING_PRIORITY = training_priorities(GROUPS, SPECS)
AFTER_TRAINING = len(GROUPS) + 1

# GPU jobs declare gpu=1: one of `jobs_per_gpu` slots of a GPU (riwae.device.claim_device).
# Snakemake runs as many at once as the resource allows: `--resources gpu=N` when given,
# else the visible GPUs (at least one, for a submitting host without any) times
# jobs_per_gpu. On the CPU they declare none and run side by side.
GPU_JOBS = 1 if uses_gpu(config["device"]) else 0
JOBS_PER_GPU = config["jobs_per_gpu"]
if GPU_JOBS:
    workflow.resource_settings.resources.setdefault(
        "gpu", max(1, visible_gpu_count()) * JOBS_PER_GPU
    )

# How every job that computes computes: the precision of float32 matrix products, and for
# the jobs on the device, where the locks of the GPUs they hold live.
MATMUL_PRECISION = config["matmul_precision"]
GPU_LOCKS = f"{RUN}/locks"

# What the schema cannot see (non-finite numbers, integers written as floats, one model
# listed twice, schedules that train nothing, work that would not fit in memory, TF32
# switched on behind the config's back), refused before any job starts. Once, in the
# process that schedules the jobs: the GPU's memory is asked in a child process, which a
# job's own reading of this file need not start again.
if workflow.is_main_process:
    problem = tf32_override_problem(MATMUL_PRECISION)
    if problem:
        raise WorkflowError(problem)
    with open(Path(workflow.basedir) / SCHEMA) as f:
        schema = yaml.safe_load(f)
    try:
        check_values(
            config,
            machine_memory(),
            visible_gpu_memory() if GPU_JOBS else None,
            schema,
        )
    except ConfigError as error:
        raise WorkflowError(str(error)) from None


# One run at a time: the process that runs jobs holds an OS-level lock on the run folder
# until it ends (job processes and dry runs take none).
onstart:
    try:
        hold_run_lock(RUN)
    except UserError as error:
        raise WorkflowError(str(error)) from None


# The report's categories, in the order of the paper's claims (the report sorts them by name).
CATEGORY = {
    "C1": "C1 q_IW approaches the true posterior",
    "C2": "C2 Reconstructions from q and from q_IW",
    "C3": "C3 The identity and the marginal q_IW",
    "C4": "C4 IWAE and VAE on MNIST",
    "C5": "C5 Appendix, a 1D posterior",
    "digits": "Posteriors of real digits",
    "objectives": "Objectives after IWAE",
    "provenance": "Provenance",
}


def shown(path, caption, claim, label, subcategory=None):
    """``path`` marked for the report: with the caption workflow/report/<caption>.rst,
    under the category of ``claim`` (a key of CATEGORY), labelled ``label``."""
    return report(
        path,
        caption=f"../report/{caption}.rst",
        category=CATEGORY[claim],
        subcategory=subcategory,
        labels={"item": label},
    )


def figure(name, caption, claim, label, subcategory=None):
    """The outputs of a figure rule: figures/<name>.png, shown in the report, and the same
    figure as PDF."""
    return {
        "png": shown(f"{RUN}/figures/{name}.png", caption, claim, label, subcategory),
        "pdf": f"{RUN}/figures/{name}.pdf",
    }
