"""Weakly supervised semantic segmentation with MCTformer (CVPR 2022).

The core package of the pipeline: every stage is a plain function here; the
Snakemake rules under ``workflow/`` only parse their inputs and call them.
This package never imports snakemake.
"""

__version__ = "0.1.0"
