# The 2D latent space of each 2D model: posterior means of the test set, decodes over them.


rule latent_space:
    input:
        data="resources/mnist.npz",
        model=f"{RUN}/models/{{model2d}}/model.pt",
    output:
        arrays=f"{RUN}/figures/latent_space_{{model2d}}.npz",
    log:
        f"{RUN}/logs/latent_space_{{model2d}}.log",
    benchmark:
        f"{RUN}/benchmarks/latent_space_{{model2d}}.tsv"
    threads: config["threads_per_job"]
    params:
        spec=lambda wildcards: SPECS[wildcards.model2d].as_dict(),
        manifold_size=config["figures"]["manifold_size"],
        seed=config["seed"],
        matmul_precision=MATMUL_PRECISION,
    run:
        stages.latent_space(
            **input, **output, **params, threads=threads, log_file=log[0]
        )


rule latent_space_figure:
    input:
        arrays=rules.latent_space.output.arrays,
    output:
        **figure(
            "latent_space_{model2d}",
            "latent_space",
            "digits",
            "Figure: the latent space",
            subcategory="{model2d}",
        ),
    log:
        f"{RUN}/logs/latent_space_figure_{{model2d}}.log",
    benchmark:
        f"{RUN}/benchmarks/latent_space_figure_{{model2d}}.tsv"
    params:
        style=config["plot"],
    run:
        stages.latent_space_figure(
            **input,
            **output,
            **params,
            model_name=wildcards.model2d,
            log_file=log[0],
        )
