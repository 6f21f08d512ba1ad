# The refining check compares the grid with every other point of it: that needs an odd size.
if config["exact"]["grid_size"] % 2 == 0:
    raise WorkflowError(
        f"Invalid config at exact.grid_size: {config['exact']['grid_size']} is even; use an "
        f"odd number, so that every other grid point spans the same box."
    )


rule exact_loglik:
    input:
        data="resources/mnist.npz",
        models=expand(rules.train.output.model, model=MODELS_2D),
        evaluations=expand(rules.evaluate.output[0], model=MODELS_2D),
    output:
        table=f"{RUN}/tables/exact_loglik.csv",
        markdown=report(
            f"{RUN}/tables/exact_loglik.md",
            caption="../report/exact_loglik.rst",
            category="Exact log-likelihood of the 2D models",
        ),
        per_image=f"{RUN}/tables/exact_loglik_per_image.csv",
        arrays=f"{RUN}/figures/exact_loglik.npz",
    log:
        f"{RUN}/logs/exact_loglik.log",
    benchmark:
        f"{RUN}/benchmarks/exact_loglik.tsv"
    conda:
        "../../environment.yml"
    threads: config["threads_per_job"]
    resources:
        gpu=GPU_JOBS,
    params:
        exact=config["exact"],
        test_images=config["evaluation"]["test_images"],
        models=MODELS_2D,
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/exact_loglik.py"


rule exact_loglik_figure:
    input:
        per_image=rules.exact_loglik.output.per_image,
        arrays=rules.exact_loglik.output.arrays,
    output:
        png=report(
            f"{RUN}/figures/exact_loglik.png",
            caption="../report/exact_loglik.rst",
            category="Exact log-likelihood of the 2D models",
        ),
        pdf=f"{RUN}/figures/exact_loglik.pdf",
    log:
        f"{RUN}/logs/exact_loglik_figure.log",
    benchmark:
        f"{RUN}/benchmarks/exact_loglik_figure.tsv"
    conda:
        "../../environment.yml"
    params:
        style=config["plot"],
    script:
        "../scripts/exact_loglik_figure.py"
