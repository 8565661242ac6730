"""Send a stage's output to its log file (rules pass ``snakemake.log``), and the stages' progress bars.

Every long stage reports progress through :func:`progress_bar` (tqdm's arguments):
on a terminal it is tqdm's live bar; written anywhere else (a rule's log file
under :func:`redirect_to_log`, a pipe, a CI log) it prints a plain line every
:data:`LOG_LINE_SECONDS` and one when the bar closes, instead of tqdm's stream
of carriage-return redraws (one line of kilobytes per bar in a file).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm import tqdm

# Seconds between two progress lines in a log file (plus one line when a bar closes).
LOG_LINE_SECONDS = 60.0


@contextlib.contextmanager
def redirect_to_log(path: str | os.PathLike | None) -> Iterator[None]:
    """stdout and stderr (tqdm's progress included) go to ``path``; nothing changes when it is None."""
    if not path:
        yield
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", buffering=1) as handle, contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
        yield


def progress_bar(iterable: Iterable | None = None, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)`` where it writes to a terminal; :class:`LogLineProgress` elsewhere.

    The stream is tqdm's own choice, ``file=`` or else the current ``sys.stderr``
    (the log file inside :func:`redirect_to_log`). ``disable=`` works as in tqdm;
    ``line_seconds=`` sets the interval of the log lines (default :data:`LOG_LINE_SECONDS`).
    """
    line_seconds = kwargs.pop("line_seconds", None)  # only for the log lines
    stream = kwargs.get("file") or sys.stderr
    if _is_terminal(stream):
        return tqdm(iterable, **kwargs)
    return LogLineProgress(iterable, line_seconds=line_seconds, **kwargs)


class LogLineProgress(tqdm):
    """A tqdm that writes whole lines: one every ``line_seconds`` (default :data:`LOG_LINE_SECONDS`) and one at close.

    A line reads like tqdm's bar without the bar, e.g.
    ``train epoch 1/4:  37% 34/93 [00:20<00:35, 1.67batch/s, loss=0.4123]``;
    no carriage returns, no ANSI codes. With ``leave=False`` the closing line is left out.
    """

    def __init__(self, iterable: Iterable | None = None, *args: Any, line_seconds: float | None = None, **kwargs: Any):
        self._line_stream = kwargs.pop("file", None) or sys.stderr
        self._line_seconds = LOG_LINE_SECONDS if line_seconds is None else float(line_seconds)
        self._last_line_time = time.monotonic()
        self._last_line_n: int | float | None = None
        self._closing = False
        # tqdm draws into a sink; the lines go to the real stream (see display)
        super().__init__(iterable, *args, file=_Sink(), **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        now = time.monotonic()
        if self._closing:
            due = self.leave is not False and self.n != self._last_line_n
        else:
            due = msg is None and now - self._last_line_time >= self._line_seconds
        if due:
            line = self.format_meter(**{**self.format_dict, "ncols": 0, "bar_format": None})
            try:
                self._line_stream.write(line.replace("\r", " ") + "\n")
                self._line_stream.flush()
            except (AttributeError, ValueError, OSError):  # no stream, or closed under us: no line, no crash
                pass
            self._last_line_time, self._last_line_n = now, self.n
        return True

    def close(self) -> None:
        if not getattr(self, "disable", True):
            self._closing = True
        super().close()


class _Sink:
    """Where tqdm's own redraws go for :class:`LogLineProgress` (nothing is kept)."""

    encoding = "utf-8"

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or closed
        return False
