# Each objective through q and q_IW on every trained 2D model, measured exactly.


rule through_qiw:
    input:
        data="resources/mnist.npz",
        models=expand(TRAINED["model"], model=REPLICATES_2D),
        reconstruction=rules.reconstruct.output.metric,
    output:
        per_image=f"{RUN}/tables/through_qiw_per_image.csv",
        table=f"{RUN}/tables/through_qiw.csv",
        markdown=f"{RUN}/tables/through_qiw.md",
        html=shown(
            f"{RUN}/tables/through_qiw.html",
            "through_qiw",
            "objectives",
            "Table: each objective's q and q_IW on the 2D models, exactly",
        ),
    log:
        f"{RUN}/logs/through_qiw.log",
    benchmark:
        f"{RUN}/benchmarks/through_qiw.tsv"
    threads: config["threads_per_job"]
    resources:
        gpu=GPU_JOBS,
    params:
        settings=config["through_qiw"],
        test_images=config["evaluation"]["test_images"],
        exact_settings=config["exact"],
        model_names=REPLICATES_2D,
        seed=config["seed"],
        device=config["device"],
        gpu_locks=GPU_LOCKS,
        jobs_per_gpu=JOBS_PER_GPU,
        matmul_precision=MATMUL_PRECISION,
    run:
        stages.through_qiw(
            **input, **output, **params, threads=threads, log_file=log[0]
        )
