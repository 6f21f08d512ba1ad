# C3: the marginal q_IW among the bounds, L_VAE[q] <= L_IWAE[q] <= L_VAE[q_IW] <= log p(x).


rule marginal:
    input:
        data="resources/mnist.npz",
        models=expand(TRAINED["model"], model=names(REPLICATES_2D)),
    output:
        table=f"{RUN}/checks/marginal.csv",
        over_seeds=f"{RUN}/checks/marginal_over_seeds.csv",
        markdown=f"{RUN}/checks/marginal.md",
        html=shown(
            f"{RUN}/checks/marginal.html",
            "marginal",
            "C3",
            "Table: the marginal q_IW among the bounds",
        ),
    log:
        f"{RUN}/logs/marginal.log",
    benchmark:
        f"{RUN}/benchmarks/marginal.tsv"
    priority: AFTER_TRAINING
    threads: config["threads_per_job"]
    params:
        settings=config["marginal"],
        specs=as_params(REPLICATES_2D),
        seed=config["seed"],
        matmul_precision=MATMUL_PRECISION,
    run:
        stages.marginal(**input, **output, **params, threads=threads, log_file=log[0])


rule marginal_figure:
    input:
        table=rules.marginal.output.table,
    output:
        **figure(
            "marginal_bounds",
            "marginal_figure",
            "C3",
            "Figure: the four quantities and the KL against k",
        ),
    log:
        f"{RUN}/logs/marginal_figure.log",
    benchmark:
        f"{RUN}/benchmarks/marginal_figure.tsv"
    params:
        specs=as_params(MODELS_2D),
        style=config["plot"],
    run:
        stages.marginal_figure(**input, **output, **params, log_file=log[0])
