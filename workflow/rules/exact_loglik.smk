# log p(x) of every 2D model (every training seed) by quadrature, beside the k = 5000
# estimate of `evaluate`.

# The refining check compares the grid with every other point of it: that needs an odd size.
if config["exact"]["grid_size"] % 2 == 0:
    raise WorkflowError(
        f"Invalid config at exact.grid_size: {config['exact']['grid_size']} is even; use an "
        f"odd number, so that every other grid point spans the same box."
    )

# Only in a run with 2D models.
if MODELS_2D:

    rule exact_loglik:
        input:
            data="resources/mnist.npz",
            models=expand(TRAINED["model"], model=names(REPLICATES_2D)),
            evaluations=expand(rules.evaluate.output.result, model=names(REPLICATES_2D)),
        output:
            table=f"{RUN}/tables/exact_loglik.csv",
            over_seeds=f"{RUN}/tables/exact_loglik_over_seeds.csv",
            markdown=f"{RUN}/tables/exact_loglik.md",
            html=shown(
                f"{RUN}/tables/exact_loglik.html",
                "exact_loglik",
                "C4",
                "Table: exact log p(x) of the 2D models beside the estimate",
            ),
            per_image=f"{RUN}/tables/exact_loglik_per_image.csv",
            arrays=f"{RUN}/figures/exact_loglik.npz",
        log:
            f"{RUN}/logs/exact_loglik.log",
        benchmark:
            f"{RUN}/benchmarks/exact_loglik.tsv"
        priority: AFTER_TRAINING
        threads: config["threads_per_job"]
        resources:
            gpu=GPU_JOBS,
        params:
            settings=config["exact"],
            test_images=config["evaluation"]["test_images"],
            specs=as_params(REPLICATES_2D),
            seed=config["seed"],
            device=config["device"],
            gpu_locks=GPU_LOCKS,
            jobs_per_gpu=JOBS_PER_GPU,
            matmul_precision=MATMUL_PRECISION,
        run:
            stages.exact_loglik(
                **input, **output, **params, threads=threads, log_file=log[0]
            )

    rule exact_loglik_figure:
        input:
            per_image=rules.exact_loglik.output.per_image,
            arrays=rules.exact_loglik.output.arrays,
        output:
            **figure(
                "exact_loglik",
                "exact_loglik",
                "C4",
                "Figure: exact log p(x) minus the estimate, per image",
            ),
        log:
            f"{RUN}/logs/exact_loglik_figure.log",
        benchmark:
            f"{RUN}/benchmarks/exact_loglik_figure.tsv"
        params:
            models=names(MODELS_2D),
            style=config["plot"],
        run:
            stages.exact_loglik_figure(**input, **output, **params, log_file=log[0])
