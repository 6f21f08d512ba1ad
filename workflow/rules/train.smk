rule train:
    input:
        "resources/mnist.npz",
    output:
        model=f"{RUN}/models/{{model}}/model.pt",
        history=f"{RUN}/models/{{model}}/history.csv",
    log:
        f"{RUN}/logs/train/{{model}}.log",
    benchmark:
        f"{RUN}/benchmarks/train/{{model}}.tsv"
    conda:
        "../../environment.yml"
    threads: config["threads_per_job"]
    resources:
        gpu=GPU_JOBS,
    params:
        settings=lambda wildcards: train_settings(wildcards.model),
        checkpoint=lambda wildcards: f"{RUN}/models/{wildcards.model}/checkpoint.pt",
        device=config["device"],
    script:
        "../scripts/train.py"
