"""Train one training group of a config as the pipeline's ``train_<group>`` rule does, to
the same files, without Snakemake's scheduler: for a GPU machine with torch but without
Snakemake, or a job that must stop at a deadline and resume later.

    python -m riwae.train_group --configfile config/paper.yaml config/paper-2d.yaml \\
        --group cremer2d [--device cuda]

Config files are read as Snakemake reads them: config/config.yaml first, then each file
over it. The group, its members' settings and every path are those of the rule
(``results/<run>/models/<model>/``, ``results/<run>/checkpoints/<group>.pt``,
``results/<run>/logs/train/<group>.log``). Stopped early (Ctrl-C, ``timeout -s INT``), it
leaves its last checkpoint (written at every learning-rate stage's end and every
``checkpoint_minutes``), from which the next call, or the rule, resumes. It does not
validate the config: run it on configs the pipeline accepts.
"""

import argparse

import yaml

from riwae import stages
from riwae.config import DEFAULT_CONFIG, merge
from riwae.spec import model_specs, training_groups


def read_config(paths: list[str]) -> dict:
    config: dict = {}
    for path in [DEFAULT_CONFIG, *paths]:
        with open(path) as f:
            config = merge(config, yaml.safe_load(f) or {})
    return config


def group_job(config: dict, group: str) -> dict:
    """The keyword arguments of ``stages.train`` for ``group``, as the rule passes them."""
    specs = model_specs(config)
    groups = training_groups(specs, config["training_groups"], config["device"])
    if group not in groups:
        raise SystemExit(f"No training group {group!r} here; the groups are {', '.join(groups)}.")
    members = [spec for spec in specs if spec.name in groups[group]]
    run = f"results/{config['run']}"
    return {
        "mnist": "resources/mnist.npz",
        "models": [f"{run}/models/{m.name}/model.pt" for m in members],
        "histories": [f"{run}/models/{m.name}/history.csv" for m in members],
        "timings": [f"{run}/models/{m.name}/timing.csv" for m in members],
        "settings": [m.settings.as_dict() for m in members],
        "checkpoint": f"{run}/checkpoints/{group}.pt",
        "device": config["device"],
        "gpu_locks": f"{run}/locks",
        "jobs_per_gpu": config["jobs_per_gpu"],
        "checkpoint_minutes": config["checkpoint_minutes"],
        "cuda_graphs": config["cuda_graphs"],
        "matmul_precision": config["matmul_precision"],
        "threads": config["threads_per_job"],
        "log_file": f"{run}/logs/train/{group}.log",
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", nargs="+", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--device", help="the config's device, as --config device=... would set it")
    args = parser.parse_args(argv)
    config = read_config(args.configfile)
    config["device"] = args.device or config["device"]
    stages.train(**group_job(config, args.group))


if __name__ == "__main__":
    main()
