# C5, the paper's appendix: SVI and W-SVI fits to a trimodal 1D posterior.


rule appendix:
    output:
        arrays=f"{RUN}/figures/appendix_1d.npz",
    log:
        f"{RUN}/logs/appendix.log",
    benchmark:
        f"{RUN}/benchmarks/appendix.tsv"
    params:
        settings=config["appendix"],
        seed=config["seed"],
        matmul_precision=MATMUL_PRECISION,
    run:
        stages.appendix(**output, **params, log_file=log[0])


rule appendix_figure:
    input:
        arrays=rules.appendix.output.arrays,
    output:
        **figure(
            "appendix_1d",
            "appendix",
            "C5",
            "Figure: SVI and W-SVI, q and q_IW",
        ),
    log:
        f"{RUN}/logs/appendix_figure.log",
    benchmark:
        f"{RUN}/benchmarks/appendix_figure.tsv"
    params:
        style=config["plot"],
    run:
        stages.appendix_figure(**input, **output, **params, log_file=log[0])
