"""Send a stage's output to its log file (rules pass ``snakemake.log``)."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator


@contextlib.contextmanager
def redirect_to_log(path: str | os.PathLike | None) -> Iterator[None]:
    """stdout and stderr (tqdm's progress included) go to ``path``; nothing changes when it is None."""
    if not path:
        yield
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", buffering=1) as handle, contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
        yield
