rule evaluate:
    input:
        data="resources/mnist.npz",
        model=TRAINED["model"],
    output:
        f"{RUN}/models/{{model}}/eval.json",
    log:
        f"{RUN}/logs/evaluate/{{model}}.log",
    benchmark:
        f"{RUN}/benchmarks/evaluate/{{model}}.tsv"
    conda:
        "../../environment.yml"
    threads: config["threads_per_job"]
    resources:
        gpu=GPU_JOBS,
    params:
        evaluation=config["evaluation"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../scripts/evaluate.py"


rule evaluation_tables:
    input:
        evaluations=expand(rules.evaluate.output[0], model=MODELS),
        histories=expand(TRAINED["history"], model=MODELS),
        timings=expand(TRAINED["timing"], model=MODELS),
    output:
        evaluation=report(
            f"{RUN}/tables/evaluation.csv",
            caption="../report/evaluation.rst",
            category="Training and evaluation",
        ),
        burda=f"{RUN}/tables/burda_comparison.csv",
        burda_markdown=report(
            f"{RUN}/tables/burda_comparison.md",
            caption="../report/burda_comparison.rst",
            category="Training and evaluation",
        ),
        histories=f"{RUN}/tables/histories.csv",
        training_times=f"{RUN}/tables/training_times.csv",
    log:
        f"{RUN}/logs/evaluation_tables.log",
    benchmark:
        f"{RUN}/benchmarks/evaluation_tables.tsv"
    conda:
        "../../environment.yml"
    params:
        models=MODELS,
    script:
        "../scripts/evaluation_tables.py"


rule training_figures:
    input:
        evaluation=rules.evaluation_tables.output.evaluation,
        histories=rules.evaluation_tables.output.histories,
    output:
        curves=report(
            f"{RUN}/figures/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="Training and evaluation",
        ),
        curves_pdf=f"{RUN}/figures/learning_curves.pdf",
        bounds=report(
            f"{RUN}/figures/bound_vs_k.png",
            caption="../report/bound_vs_k.rst",
            category="Training and evaluation",
        ),
        bounds_pdf=f"{RUN}/figures/bound_vs_k.pdf",
    log:
        f"{RUN}/logs/training_figures.log",
    benchmark:
        f"{RUN}/benchmarks/training_figures.tsv"
    conda:
        "../../environment.yml"
    params:
        style=config["plot"],
    script:
        "../scripts/training_figures.py"
