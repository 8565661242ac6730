import sys

from .cli import main

if __name__ == "__main__":  # guarded: DeepLab's CRF pool on CUDA starts by forkserver, whose workers import the main module
    sys.exit(main())
