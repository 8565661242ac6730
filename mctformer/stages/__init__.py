"""One function per pipeline stage: what each Snakemake rule script calls.

One module per rule file (workflow/rules/<name>.smk -> mctformer.stages.<name>), so a rule script
imports its stage from the module named like its rule file. Each stage takes plain paths and config
keys, reads the previous stage's files and writes its own (atomically). Nothing here knows about
Snakemake. torch, the networks and matplotlib are imported inside the stages that need them, so that
the evaluation jobs start in a fraction of the time.
"""
