# C3: L_IWAE[q] = L_VAE[q_IW] per sample set, on the synthetic target and every trained model
# (every training seed).


rule identity:
    input:
        data="resources/mnist.npz",
        models=expand(TRAINED["model"], model=names(REPLICATES)),
        qiw_distances=rules.posterior_grid.output.distances,
    output:
        check=f"{RUN}/checks/identity.json",
        table=f"{RUN}/checks/identity.md",
        table_html=shown(
            f"{RUN}/checks/identity.html",
            "identity",
            "C3",
            "Table: both sides of the identity",
        ),
    log:
        f"{RUN}/logs/identity.log",
    benchmark:
        f"{RUN}/benchmarks/identity.tsv"
    threads: config["threads_per_job"]
    params:
        settings=config["identity"],
        specs=as_params(REPLICATES),
        seed=config["seed"],
        matmul_precision=MATMUL_PRECISION,
    run:
        stages.identity(**input, **output, **params, threads=threads, log_file=log[0])
