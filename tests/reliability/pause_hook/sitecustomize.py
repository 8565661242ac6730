"""Test hook: hold a pipeline stage at a known point so a test can kill it there.

Put this folder on PYTHONPATH and set MCT_RELIABILITY_PAUSE to a JSON object
{"module", "function", "match", "after", "marker"} and optionally "when" and
"release". Once ``module`` is imported, its ``function`` is wrapped: at the
``after``-th call whose first argument (a path) contains ``match``, right after
the call returns (or, with "when": "before", before it starts), the process
writes ``marker`` (JSON: pid, path) and then sleeps: forever, so that the
stage is demonstrably in progress when the test sends SIGKILL, or until the
file named by "release" appears. Without the variable this file does nothing.
"""

import importlib.abc
import json
import os
import sys
import threading
import time

_SPEC = os.environ.get("MCT_RELIABILITY_PAUSE")


def _wrap(module, spec):
    original = getattr(module, spec["function"])
    lock = threading.Lock()
    calls = [0]

    def paused(*args, **kwargs):
        before = spec.get("when") == "before"
        result = None if before else original(*args, **kwargs)
        path = str(args[0]) if args else ""
        if spec["match"] in path:
            with lock:
                calls[0] += 1
                hit = calls[0] == spec["after"]
            if hit:
                marker = spec["marker"]
                with open(marker + ".part", "w") as handle:
                    json.dump({"pid": os.getpid(), "path": path}, handle)
                os.replace(marker + ".part", marker)
                release = spec.get("release")
                while release is None or not os.path.exists(release):
                    time.sleep(0.2 if release else 3600)
        return original(*args, **kwargs) if before else result

    setattr(module, spec["function"], paused)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    def __init__(self, spec):
        self.spec = spec

    def find_spec(self, name, path, target=None):
        if name != self.spec["module"]:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            found = finder.find_spec(name, path, target)
            if found is not None:
                break
        else:
            return None
        exec_module = found.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _wrap(module, self.spec)

        found.loader.exec_module = exec_and_patch
        return found


if _SPEC:
    sys.meta_path.insert(0, _PatchOnImport(json.loads(_SPEC)))
