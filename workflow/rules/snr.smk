# Gradient signal-to-noise ratio (Rainforth et al., 2018) at trained models' weights: per
# model of `snr.models` (SNR_MODELS, common.smk), then one table and one figure over them.
for name in sorted(set(SNR_MODELS) - set(names(MODELS))):
    raise WorkflowError(
        f"Invalid config at snr.models: {name!r} is not a model of models; use one of "
        f"{', '.join(names(MODELS))}."
    )


rule gradient_snr:
    input:
        data="resources/mnist.npz",
        model=f"{RUN}/models/{{snr_model}}/model.pt",
    output:
        table=f"{RUN}/models/{{snr_model}}/gradient_snr.csv",
    log:
        f"{RUN}/logs/gradient_snr/{{snr_model}}.log",
    benchmark:
        f"{RUN}/benchmarks/gradient_snr/{{snr_model}}.tsv"
    threads: config["threads_per_job"]
    resources:
        gpu=GPU_JOBS,
    params:
        spec=lambda wildcards: SPECS[wildcards.snr_model].as_dict(),
        settings=settings_of("snr", "images", "k", "estimators", "repeats"),
        seed=config["seed"],
        device=config["device"],
        gpu_locks=GPU_LOCKS,
        jobs_per_gpu=JOBS_PER_GPU,
        matmul_precision=MATMUL_PRECISION,
    run:
        stages.gradient_snr(
            **input, **output, **params, threads=threads, log_file=log[0]
        )


if SNR_MODELS:

    rule gradient_snr_tables:
        input:
            tables=expand(rules.gradient_snr.output.table, snr_model=SNR_MODELS),
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
