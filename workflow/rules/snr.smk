# Gradient signal-to-noise ratio (Rainforth et al., 2018) at trained models' weights: per
# model, then one table and one figure over the models of `snr.models`.
SNR_MODELS = config["snr"]["models"]
for name in sorted(set(SNR_MODELS) - set(MODELS)):
    raise WorkflowError(
        f"Invalid config at snr.models: {name!r} is not a model of models; use one of "
        f"{', '.join(MODELS)}."
    )


rule gradient_snr:
    input:
        data="resources/mnist.npz",
        model=TRAINED["model"],
    output:
        table=f"{RUN}/models/{{model}}/gradient_snr.csv",
    log:
        f"{RUN}/logs/gradient_snr/{{model}}.log",
    benchmark:
        f"{RUN}/benchmarks/gradient_snr/{{model}}.tsv"
    threads: config["threads_per_job"]
    resources:
        gpu=GPU_JOBS,
    params:
        settings=config["snr"],
        seed=config["seed"],
        device=config["device"],
        gpu_locks=GPU_LOCKS,
        jobs_per_gpu=JOBS_PER_GPU,
        matmul_precision=MATMUL_PRECISION,
    run:
        stages.gradient_snr(
            **input,
            **output,
            **params,
            model_name=wildcards.model,
            threads=threads,
            log_file=log[0],
        )


rule gradient_snr_tables:
    input:
        tables=expand(rules.gradient_snr.output.table, model=SNR_MODELS),
    output:
        table=f"{RUN}/tables/gradient_snr.csv",
        slopes=f"{RUN}/tables/gradient_snr_slopes.csv",
        markdown=f"{RUN}/tables/gradient_snr.md",
        html=shown(
            f"{RUN}/tables/gradient_snr.html",
            "gradient_snr",
            "objectives",
            "Table: gradient SNR of encoder and decoder against k",
        ),
    log:
        f"{RUN}/logs/gradient_snr_tables.log",
    run:
        stages.gradient_snr_tables(**input, **output, log_file=log[0])


rule gradient_snr_figure:
    input:
        table=rules.gradient_snr_tables.output.table,
    output:
        **figure(
            "gradient_snr",
            "gradient_snr_figure",
            "objectives",
            "Figure: gradient SNR against k, log-log",
        ),
    log:
        f"{RUN}/logs/gradient_snr_figure.log",
    params:
        style=config["plot"],
    run:
        stages.gradient_snr_figure(**input, **output, **params, log_file=log[0])
