"""riwae: replication of 'Reinterpreting Importance-Weighted Autoencoders'."""

__version__ = "0.1.0"
