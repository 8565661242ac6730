"""Entry point of each torchrun rank: ``python -m mctformer.training.launch <module>:<function> <arguments.pkl>``.

:func:`mctformer.training.distributed.run_under_torchrun` starts it; it imports the named
function, calls it with the pickled keyword arguments, and leaves the process group.
"""

from __future__ import annotations

import importlib
import pickle
import sys


def main(argv: list[str]) -> None:
    import torch.distributed as dist

    target, arguments_path = argv
    module_name, _, function_name = target.partition(":")
    function = getattr(importlib.import_module(module_name), function_name)
    with open(arguments_path, "rb") as handle:
        arguments = pickle.load(handle)
    try:
        function(**arguments)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
