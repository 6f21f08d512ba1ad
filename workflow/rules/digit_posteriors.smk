# True posteriors and q_IW of test digits under each 2D model, each on its own grid.


rule digit_posteriors:
    input:
        data="resources/mnist.npz",
        model=f"{RUN}/models/{{model2d}}/model.pt",
    output:
        arrays=f"{RUN}/figures/digit_posteriors_{{model2d}}.npz",
    log:
        f"{RUN}/logs/digit_posteriors_{{model2d}}.log",
    benchmark:
        f"{RUN}/benchmarks/digit_posteriors_{{model2d}}.tsv"
    threads: config["threads_per_job"]
    params:
        spec=lambda wildcards: SPECS[wildcards.model2d].as_dict(),
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


rule digit_posteriors_figure:
    input:
        arrays=rules.digit_posteriors.output.arrays,
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
