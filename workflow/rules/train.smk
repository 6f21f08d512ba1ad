# Training jobs are per group of models that train as one stacked network (see
# `training_groups` in the config and GROUPS in common.smk); each member keeps its own files.
# Their rules are named train_<group>; resources set for `train` (--set-resources, or
# set-resources in a profile) apply to every one of them, unless set for one by its name.
TRAINED = {
    "model": f"{RUN}/models/{{model}}/model.pt",
    "history": f"{RUN}/models/{{model}}/history.csv",
    "timing": f"{RUN}/models/{{model}}/timing.csv",
}


for group, members in GROUPS.items():

    rule:
        name:
            f"train_{group}"
        input:
            mnist="resources/mnist.npz",
        output:
            models=expand(TRAINED["model"], model=members),
            histories=expand(TRAINED["history"], model=members),
            timings=expand(TRAINED["timing"], model=members),
        log:
            f"{RUN}/logs/train/{group}.log",
        benchmark:
            f"{RUN}/benchmarks/train/{group}.tsv"
        priority: TRAINING_PRIORITY[group]
        threads: config["threads_per_job"]
        resources:
            gpu=GPU_JOBS,
        params:
            settings=[train_settings(model) for model in members],
            checkpoint=f"{RUN}/checkpoints/{group}.pt",
            device=config["device"],
            gpu_locks=GPU_LOCKS,
            jobs_per_gpu=JOBS_PER_GPU,
            matmul_precision=MATMUL_PRECISION,
        run:
            # How the steps run and how often a checkpoint is written change no number:
            # read here, not params, so that changing them retrains nothing.
            stages.train(
                **input,
                **output,
                **params,
                threads=threads,
                checkpoint_minutes=config["checkpoint_minutes"],
                cuda_graphs=config["cuda_graphs"],
                log_file=log[0],
            )

    overwritten = workflow.resource_settings.overwrite_resources
    if "train" in overwritten and f"train_{group}" not in overwritten:
        workflow.get_rule(f"train_{group}").resources.update(overwritten["train"])
