"""A rule's log file gets whole progress lines, not tqdm's carriage-return redraws; a terminal keeps its bars."""

import ast
import io
import time

import pytest
from tqdm import tqdm
from tqdm.std import TqdmKeyError

from helpers.workflow import REPO
from mctformer.logs import LogLineProgress, progress_bar, redirect_to_log


def raw(path):
    """The file's text as written (read_text would turn every carriage return into a newline)."""
    return path.read_bytes().decode()


class Terminal(io.StringIO):
    def isatty(self):
        return True


def epoch_like_loop(batches, seconds_per_batch=0.0, **kwargs):
    """What training/loop.py does per epoch: a bar over the batches, a postfix every batch, a summary line."""
    bar = progress_bar(range(batches), desc="classifier epoch 1/1", unit="batch", mininterval=0.0, **kwargs)
    for step in bar:
        if seconds_per_batch:
            time.sleep(seconds_per_batch)
        bar.set_postfix(loss=f"{1 / (step + 1):.4f}")
    print("classifier epoch 1: loss 0.01, lr 0.001")


def test_a_log_file_gets_whole_lines_a_bounded_number_of_them(tmp_path):
    log = tmp_path / "logs" / "train_classifier.log"
    with redirect_to_log(log):
        epoch_like_loop(2000)  # fast: only the closing line is due
        with progress_bar(total=500, desc="extract maps", unit="img", mininterval=2.0) as bar:
            for _ in range(50):
                bar.update(10)
        for _ in progress_bar(range(10), desc="hidden", disable=True):  # e.g. DDP ranks other than 0
            pass
    text = raw(log)
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert lines == [
        lines[0], "classifier epoch 1: loss 0.01, lr 0.001", lines[2],
    ], text
    assert lines[0].startswith("classifier epoch 1/1: 100% 2000/2000 [") and "loss=0.0005" in lines[0]
    assert lines[2].startswith("extract maps: 100% 500/500 [")
    assert max(map(len, lines)) < 200


def test_a_long_bar_writes_a_line_every_interval_and_stays_bounded(tmp_path):
    log = tmp_path / "stage.log"
    interval, batches, pause = 0.05, 40, 0.01
    started = time.monotonic()
    with redirect_to_log(log):
        epoch_like_loop(batches, seconds_per_batch=pause, line_seconds=interval)
    elapsed = time.monotonic() - started
    text = raw(log)
    assert "\r" not in text
    bar_lines = [line for line in text.splitlines() if line.startswith("classifier epoch 1/1:")]
    assert 2 <= len(bar_lines) <= elapsed / interval + 2, (elapsed, text)
    assert bar_lines[-1].startswith("classifier epoch 1/1: 100% 40/40")
    counts = [int(line.split("% ")[1].split("/")[0]) for line in bar_lines]
    assert counts == sorted(set(counts))  # progressing, no repeated line


def test_the_old_way_is_what_the_log_file_used_to_get(tmp_path):
    """Plain tqdm into the same log: the carriage-return stream the helper replaces."""
    log = tmp_path / "old.log"
    with redirect_to_log(log):
        bar = tqdm(range(300), desc="classifier epoch 1/1", mininterval=0.0)
        for step in bar:
            bar.set_postfix(loss=f"{step:.4f}")
    text = raw(log)
    assert text.count("\r") > 100 and text.count("\n") <= 2


def test_a_terminal_keeps_tqdms_live_bar():
    terminal = Terminal()
    bar = progress_bar(range(5), desc="maps", file=terminal, mininterval=0.0)
    assert type(bar) is tqdm
    list(bar)
    assert "\r" in terminal.getvalue()
    with pytest.raises(TqdmKeyError):  # line_seconds is ours: it never reaches tqdm
        tqdm(range(1), line_seconds=1)
    list(progress_bar(range(2), file=Terminal(), line_seconds=1))


def test_the_stream_is_chosen_when_the_bar_starts(tmp_path):
    """sys.stderr at construction: inside redirect_to_log the log, whatever the bar was imported under."""
    with redirect_to_log(tmp_path / "a.log"):
        bar = progress_bar(range(3), desc="a")
    assert isinstance(bar, LogLineProgress)
    list(bar)
    assert raw(tmp_path / "a.log") == ""  # written to the log stream, which was closed: no crash
    a_pipe = io.StringIO()
    list(progress_bar(range(3), desc="b", file=a_pipe))
    assert a_pipe.getvalue().startswith("b: 100% 3/3 [") and a_pipe.getvalue().count("\n") == 1


def test_leave_false_writes_no_closing_line():
    stream = io.StringIO()
    list(progress_bar(range(3), file=stream, leave=False))
    assert stream.getvalue() == ""


def tqdm_users():
    users = []
    for path in sorted((REPO / "mctformer").rglob("*.py")):
        tree = ast.parse(path.read_text())
        if any(
            (isinstance(node, ast.ImportFrom) and node.module == "tqdm") or (isinstance(node, ast.Import) and any(a.name == "tqdm" for a in node.names))
            for node in ast.walk(tree)
        ):
            users.append(path.relative_to(REPO).as_posix())
    return users


def test_every_stage_reports_progress_through_the_helper():
    assert tqdm_users() == ["mctformer/logs.py"]
