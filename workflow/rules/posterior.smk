# C1, Figure 1: q_IW of the synthetic 2D target against its true posterior.


rule posterior_grid:
    output:
        arrays=f"{RUN}/figures/posterior_synthetic.npz",
        distances=f"{RUN}/tables/qiw_distance_synthetic.csv",
        distances_html=shown(
            f"{RUN}/tables/qiw_distance_synthetic.html",
            "qiw_distance",
            "C1",
            "Table: distance from q_IW to the posterior",
        ),
    log:
        f"{RUN}/logs/posterior_grid.log",
    benchmark:
        f"{RUN}/benchmarks/posterior_grid.tsv"
    params:
        settings=config["posterior"],
        seed=config["seed"],
        matmul_precision=MATMUL_PRECISION,
    run:
        stages.posterior_grid(**output, **params, log_file=log[0])


rule posterior_figure:
    input:
        arrays=rules.posterior_grid.output.arrays,
    output:
        **figure(
            "posterior_synthetic",
            "posterior",
            "C1",
            "Figure 1: the true posterior and q_IW",
        ),
    log:
        f"{RUN}/logs/posterior_figure.log",
    benchmark:
        f"{RUN}/benchmarks/posterior_figure.tsv"
    params:
        figure_k=config["posterior"]["figure_k"],
        style=config["plot"],
    run:
        stages.posterior_figure(**input, **output, **params, log_file=log[0])
