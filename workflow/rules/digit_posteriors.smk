# True posteriors and q_IW of test digits under each 2D model (every training seed), each
# on its own grid; the figures of the first-seed models.


rule digit_posteriors:
    input:
        data="resources/mnist.npz",
        model=f"{RUN}/models/{{replicate2d}}/model.pt",
    output:
        arrays=f"{RUN}/figures/digit_posteriors_{{replicate2d}}.npz",
    log:
        f"{RUN}/logs/digit_posteriors_{{replicate2d}}.log",
    benchmark:
        f"{RUN}/benchmarks/digit_posteriors_{{replicate2d}}.tsv"
    priority: AFTER_TRAINING
    threads: config["threads_per_job"]
    params:
        spec=lambda wildcards: SPECS[wildcards.replicate2d].as_dict(),
        settings=settings_of(
            "figures",
            "posterior_digits",
            "posterior_grid_limit",
            "posterior_grid_size",
            "posterior_sample_sets",
        ),
        ks=config["posterior"]["figure_k"],
        seed=config["seed"],
        matmul_precision=MATMUL_PRECISION,
    run:
        stages.digit_posteriors(
            **input, **output, **params, threads=threads, log_file=log[0]
        )


rule digit_posteriors_table:
    input:
        arrays=expand(
            rules.digit_posteriors.output.arrays, replicate2d=names(REPLICATES_2D)
        ),
    output:
        table=f"{RUN}/tables/digit_posteriors.csv",
        over_seeds=f"{RUN}/tables/digit_posteriors_over_seeds.csv",
        markdown=f"{RUN}/tables/digit_posteriors.md",
        html=shown(
            f"{RUN}/tables/digit_posteriors.html",
            "digit_posteriors",
            "digits",
            "Table: q_IW against the true posterior of test digits",
        ),
    log:
        f"{RUN}/logs/digit_posteriors_table.log",
    benchmark:
        f"{RUN}/benchmarks/digit_posteriors_table.tsv"
    params:
        specs=as_params(REPLICATES_2D),
        ks=config["posterior"]["figure_k"],
    run:
        stages.digit_posteriors_table(**input, **output, **params, log_file=log[0])


rule digit_posteriors_figure:
    input:
        arrays=f"{RUN}/figures/digit_posteriors_{{model2d}}.npz",
    output:
        **figure(
            "digit_posteriors_{model2d}",
            "digit_posteriors",
            "digits",
            "Figure: posteriors and q_IW of test digits",
            subcategory="{model2d}",
        ),
    log:
        f"{RUN}/logs/digit_posteriors_figure_{{model2d}}.log",
    benchmark:
        f"{RUN}/benchmarks/digit_posteriors_figure_{{model2d}}.tsv"
    params:
        ks=config["posterior"]["figure_k"],
        style=config["plot"],
    run:
        stages.digit_posteriors_figure(
            **input,
            **output,
            **params,
            model_name=wildcards.model2d,
            log_file=log[0],
        )
