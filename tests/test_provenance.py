"""The provenance block of summary.json (mctformer.provenance): commit, dirty tree, config hash, versions, threads,
device, date; and its one-line form under the rendered tables and at the head of report.md."""

import datetime as dt
import re
import subprocess

from mctformer import provenance


def test_config_hash_ignores_key_order_and_sees_every_value():
    a = {"seed": 0, "psa": {"alpha_low": 4, "alpha_high": 32}}
    b = {"psa": {"alpha_high": 32, "alpha_low": 4}, "seed": 0}
    assert provenance.config_hash(a) == provenance.config_hash(b)
    assert provenance.config_hash(a) != provenance.config_hash({"seed": 0, "psa": {"alpha_low": 4, "alpha_high": 12}})
    assert re.fullmatch(r"[0-9a-f]{64}", provenance.config_hash(a))


def test_collect_records_commit_dirty_config_versions_threads_device_and_date():
    now = dt.datetime(2026, 12, 7, 11, 0, 0, 123, tzinfo=dt.UTC)
    block = provenance.collect(config={"seed": 0}, threads=2, device="cpu", now=now)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=provenance.CHECKOUT, capture_output=True, text=True).stdout.strip()
    assert block["commit"] == head
    assert isinstance(block["dirty"], bool)
    assert block["config_sha256"] == provenance.config_hash({"seed": 0})
    assert set(provenance.PACKAGES) <= set(block["versions"]) and block["versions"]["torch"]
    assert block["threads"] == 2 and block["device"] == "cpu"
    assert block["date"] == "2026-12-07T11:00:00+00:00"


def test_outside_a_git_checkout_the_commit_is_unknown(tmp_path):
    assert provenance.git_state(str(tmp_path)) == {"commit": None, "dirty": None}


def test_training_threads_are_the_classifiers_capped_by_the_cpus(monkeypatch):
    monkeypatch.setattr(provenance.os, "cpu_count", lambda: 2)
    config = {"resources": {"default": {"threads": 1}, "rules": {"train_classifier": {"threads": 8}}}}
    assert provenance.training_threads(config) == 2
    assert provenance.training_threads({"resources": {"default": {"threads": 1}, "rules": {}}}) == 1


def test_provenance_line_names_each_part_and_says_when_nothing_was_recorded():
    block = {"commit": "0123456789abcdef" * 2 + "01234567", "dirty": True, "config_sha256": "ab" * 32,
             "versions": {"torch": "2.14.1", "pydensecrf2": None}, "threads": 2, "device": "cpu", "date": "2026-12-07T11:00:00+00:00"}
    line = provenance.provenance_line(block)
    assert line.startswith("provenance: commit 0123456789ab (dirty tree); config sha256 abababababab; torch 2.14.1; 2 threads; cpu;")
    assert "pydensecrf2" not in line
    assert "not recorded" in provenance.provenance_line(None)
