"""The error of bad input data, in a module of its own (no numpy, no PIL): the config checks, which run in the
Snakemake process, raise it too."""


class DatasetError(ValueError):
    """Bad input data; the message names the file and what is wrong with it."""
