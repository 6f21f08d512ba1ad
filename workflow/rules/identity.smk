rule identity:
    input:
        data="resources/mnist.npz",
        models=expand(TRAINED["model"], model=MODELS),
        qiw_distances=rules.posterior_grid.output.distances,
    output:
        json=f"{RUN}/checks/identity.json",
        markdown=report(
            f"{RUN}/checks/identity.md",
            caption="../report/identity.rst",
            category="Identity check",
        ),
    log:
        f"{RUN}/logs/identity.log",
    benchmark:
        f"{RUN}/benchmarks/identity.tsv"
    conda:
        "../../environment.yml"
    threads: config["threads_per_job"]
    params:
        identity=config["identity"],
        models=MODELS,
        seed=config["seed"],
    script:
        "../scripts/identity.py"


rule marginal:
    input:
        data="resources/mnist.npz",
        models=expand(TRAINED["model"], model=MODELS_2D),
    output:
        table=report(
            f"{RUN}/checks/marginal.csv",
            caption="../report/marginal.rst",
            category="Identity check",
        ),
        markdown=f"{RUN}/checks/marginal.md",
    log:
        f"{RUN}/logs/marginal.log",
    benchmark:
        f"{RUN}/benchmarks/marginal.tsv"
    conda:
        "../../environment.yml"
    threads: config["threads_per_job"]
    params:
        marginal=config["marginal"],
        models=MODELS_2D,
        seed=config["seed"],
    script:
        "../scripts/marginal.py"


rule marginal_figure:
    input:
        table=rules.marginal.output.table,
    output:
        png=report(
            f"{RUN}/figures/marginal_bounds.png",
            caption="../report/marginal_figure.rst",
            category="Identity check",
        ),
        pdf=f"{RUN}/figures/marginal_bounds.pdf",
    log:
        f"{RUN}/logs/marginal_figure.log",
    benchmark:
        f"{RUN}/benchmarks/marginal_figure.tsv"
    conda:
        "../../environment.yml"
    params:
        style=config["plot"],
    script:
        "../scripts/marginal_figure.py"
