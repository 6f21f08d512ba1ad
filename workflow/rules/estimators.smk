rule estimator_comparison:
    input:
        evaluation=rules.evaluation_tables.output.evaluation,
        reconstruction=rules.reconstruct.output.metric if MODELS_2D else [],
        posteriors=expand(rules.digit_posteriors.output[0], model2d=MODELS_2D),
    output:
        table=f"{RUN}/tables/estimators.csv",
        markdown=report(
            f"{RUN}/tables/estimators.md",
            caption="../report/estimators.rst",
            category="Training and evaluation",
        ),
    log:
        f"{RUN}/logs/estimator_comparison.log",
    benchmark:
        f"{RUN}/benchmarks/estimator_comparison.tsv"
    conda:
        "../../environment.yml"
    params:
        models_2d=MODELS_2D,
    script:
        "../scripts/estimator_comparison.py"
