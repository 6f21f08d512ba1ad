# Models that differ only in their gradient estimator, side by side.


rule estimator_comparison:
    input:
        evaluation=rules.evaluation_tables.output.evaluation,
        reconstruction=rules.reconstruct.output.metric if MODELS_2D else [],
        posteriors=expand(
            rules.digit_posteriors.output.arrays, replicate2d=names(MODELS_2D)
        ),
    output:
        table=f"{RUN}/tables/estimators.csv",
        markdown=f"{RUN}/tables/estimators.md",
        html=shown(
            f"{RUN}/tables/estimators.html",
            "estimators",
            "C4",
            "Table: gradient estimators compared",
        ),
    log:
        f"{RUN}/logs/estimator_comparison.log",
    benchmark:
        f"{RUN}/benchmarks/estimator_comparison.tsv"
    params:
        models_2d=names(MODELS_2D),
    run:
        stages.estimator_comparison(**input, **output, **params, log_file=log[0])
