"""Networks: MCTformer V1/V2 (mctformer.py), AffinityNet, DeepLab and their backbones.

Kept import-free so that light modules (the config checks the Snakefile runs)
can read the registry without loading torch.
"""
