# Each objective through q and q_IW on every trained 2D model, measured exactly.

# Only in a run with 2D models.
if MODELS_2D:

    rule through_qiw:
        input:
            data="resources/mnist.npz",
            models=expand(TRAINED["model"], model=names(REPLICATES_2D)),
            exact=rules.exact_loglik.output.per_image,
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
        priority: AFTER_TRAINING
        threads: config["threads_per_job"]
        resources:
            gpu=GPU_JOBS,
        params:
            settings=settings_of("through_qiw", "iwae_sets", "nodes"),
            test_images=config["evaluation"]["test_images"],
            specs=as_params(REPLICATES_2D),
            seed=config["seed"],
            device=config["device"],
            gpu_locks=GPU_LOCKS,
            jobs_per_gpu=JOBS_PER_GPU,
            matmul_precision=MATMUL_PRECISION,
        run:
            stages.through_qiw(
                **input, **output, **params, threads=threads, log_file=log[0]
            )

    rule through_qiw_posteriors:
        input:
            data="resources/mnist.npz",
            models=expand(TRAINED["model"], model=names(MODELS_2D)),
        output:
            arrays=f"{RUN}/figures/through_qiw.npz",
        log:
            f"{RUN}/logs/through_qiw_posteriors.log",
        benchmark:
            f"{RUN}/benchmarks/through_qiw_posteriors.tsv"
        priority: AFTER_TRAINING
        threads: config["threads_per_job"]
        params:
            specs=as_params(MODELS_2D),
            figure_k=config["through_qiw"]["figure_k"],
            settings=settings_of(
                "figures",
                "posterior_grid_limit",
                "posterior_grid_size",
                "posterior_sample_sets",
            ),
            seed=config["seed"],
            matmul_precision=MATMUL_PRECISION,
        run:
            stages.through_qiw_posteriors(
                **input, **output, **params, threads=threads, log_file=log[0]
            )

    rule through_qiw_figure:
        input:
            arrays=rules.through_qiw_posteriors.output.arrays,
        output:
            **figure(
                "through_qiw",
                "through_qiw_figure",
                "objectives",
                "Figure: one digit's posterior with q and q_IW under each objective",
            ),
        log:
            f"{RUN}/logs/through_qiw_figure.log",
        params:
            figure_k=config["through_qiw"]["figure_k"],
            style=config["plot"],
        run:
            stages.through_qiw_figure(**input, **output, **params, log_file=log[0])
