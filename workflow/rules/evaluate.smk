# C4: every trained model on the test set; the tables and figures that compare them.


rule evaluate:
    input:
        data="resources/mnist.npz",
        model=TRAINED["model"],
    output:
        result=f"{RUN}/models/{{model}}/eval.json",
    log:
        f"{RUN}/logs/evaluate/{{model}}.log",
    benchmark:
        f"{RUN}/benchmarks/evaluate/{{model}}.tsv"
    priority: AFTER_TRAINING
    threads: config["threads_per_job"]
    resources:
        gpu=GPU_JOBS,
    params:
        spec=lambda wildcards: SPECS[wildcards.model].as_dict(),
        settings=config["evaluation"],
        seed=config["seed"],
        device=config["device"],
        gpu_locks=GPU_LOCKS,
        jobs_per_gpu=JOBS_PER_GPU,
        matmul_precision=MATMUL_PRECISION,
    run:
        stages.evaluate(**input, **output, **params, threads=threads, log_file=log[0])


rule evaluation_tables:
    input:
        evaluations=expand(rules.evaluate.output.result, model=names(REPLICATES)),
        histories=expand(TRAINED["history"], model=names(REPLICATES)),
        timings=expand(TRAINED["timing"], model=names(REPLICATES)),
    output:
        evaluation=f"{RUN}/tables/evaluation.csv",
        evaluation_html=shown(
            f"{RUN}/tables/evaluation.html",
            "evaluation",
            "C4",
            "Table: every model on the test set",
        ),
        burda=f"{RUN}/tables/burda_comparison.csv",
        burda_markdown=f"{RUN}/tables/burda_comparison.md",
        burda_html=shown(
            f"{RUN}/tables/burda_comparison.html",
            "burda_comparison",
            "C4",
            "Table: ours beside Burda et al.",
        ),
        history=f"{RUN}/tables/histories.csv",
        training_times=f"{RUN}/tables/training_times.csv",
    log:
        f"{RUN}/logs/evaluation_tables.log",
    benchmark:
        f"{RUN}/benchmarks/evaluation_tables.tsv"
    params:
        specs=as_params(REPLICATES),
    run:
        stages.evaluation_tables(**input, **output, **params, log_file=log[0])


rule training_figures:
    input:
        evaluation=rules.evaluation_tables.output.evaluation,
        history=rules.evaluation_tables.output.history,
    output:
        curves=shown(
            f"{RUN}/figures/learning_curves.png",
            "learning_curves",
            "C4",
            "Figure: the bounds per epoch",
        ),
        curves_pdf=f"{RUN}/figures/learning_curves.pdf",
        bounds=shown(
            f"{RUN}/figures/bound_vs_k.png",
            "bound_vs_k",
            "C4",
            "Figure: the test bound against k",
        ),
        bounds_pdf=f"{RUN}/figures/bound_vs_k.pdf",
    log:
        f"{RUN}/logs/training_figures.log",
    benchmark:
        f"{RUN}/benchmarks/training_figures.tsv"
    params:
        style=config["plot"],
    run:
        stages.training_figures(**input, **output, **params, log_file=log[0])
