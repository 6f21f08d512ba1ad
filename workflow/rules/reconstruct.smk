# C2, Figure 2: decodes of draws from q and from q_IW of the 2D models.

# Only in a run with 2D models.
if MODELS_2D:

    rule reconstruct:
        input:
            data="resources/mnist.npz",
            models=expand(TRAINED["model"], model=names(REPLICATES_2D)),
        output:
            arrays=f"{RUN}/figures/reconstructions.npz",
            metric=f"{RUN}/tables/reconstruction_metric.csv",
            metric_over_seeds=f"{RUN}/tables/reconstruction_metric_over_seeds.csv",
            metric_html=shown(
                f"{RUN}/tables/reconstruction_metric.html",
                "reconstruction_metric",
                "C2",
                "Table: the metric over the test set",
            ),
        log:
            f"{RUN}/logs/reconstruct.log",
        benchmark:
            f"{RUN}/benchmarks/reconstruct.tsv"
        priority: AFTER_TRAINING
        threads: config["threads_per_job"]
        params:
            settings=settings_of(
                "figures",
                "reconstruction_model",
                "reconstruction_k",
                "reconstruction_digits",
                "reconstruction_draws",
                "metric_draws",
            ),
            specs=as_params(REPLICATES_2D),
            seed=config["seed"],
            matmul_precision=MATMUL_PRECISION,
        run:
            stages.reconstruct(
                **input, **output, **params, threads=threads, log_file=log[0]
            )

    rule reconstruction_figure:
        input:
            arrays=rules.reconstruct.output.arrays,
        output:
            **figure(
                "reconstructions",
                "reconstructions",
                "C2",
                "Figure 2: decodes of q and q_IW draws",
            ),
        log:
            f"{RUN}/logs/reconstruction_figure.log",
        benchmark:
            f"{RUN}/benchmarks/reconstruction_figure.tsv"
        params:
            style=config["plot"],
        run:
            stages.reconstruction_figure(**input, **output, **params, log_file=log[0])
