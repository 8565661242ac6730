"""kill -9 during each long stage, then the same command again: it completes, training resumes, outputs equal an uninterrupted run.

One chained run (in its own results folder) goes through the six long stages;
each is held at a known point by the pause hook (tests/reliability/pause_hook)
and killed there, and the next invocation, the same snakemake command, has to
finish it. Half the kills take out the whole process group (snakemake and its
job, as a power loss or the OOM killer would): Snakemake's lock then stays,
and the user runs ``--unlock`` first. The other half kill the job process
alone: snakemake notices, exits non-zero and a plain rerun continues.

Device scope: the CPU (reliability_config pins it): the resumed weights and per-epoch losses are compared bit for bit.
"""

from __future__ import annotations

import pytest

from helpers.reliability import (
    RUN,
    STAGES,
    assert_same_maps,
    assert_same_pngs,
    assert_same_weights,
    log_rows,
    output_of,
    reliability_config,
    temporaries,
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("stage", STAGES, ids=[s.rule for s in STAGES])
def test_a_killed_stage_leaves_nothing_that_looks_complete(killed_run, stage):
    _, records = killed_run
    record = records[stage.rule]
    assert record["outputs_present"] == [], f"{stage.rule} was killed but {record['outputs_present']} exist"
    if stage.temporary:
        assert any(t.startswith(stage.temporary) for t in record["temporaries"]), record["temporaries"]
    if stage.resume:
        assert record["resume_epoch"] == 1  # killed in epoch 2 of 2, after epoch 1's checkpoint
    if stage.kill == "group":
        assert not record["job_alive"]
    else:  # snakemake outlived its job, reported it and gave up
        assert record["snakemake_status"] != 0
        assert f"Error in rule {stage.rule}" in record["output"]
    # the rerun ran the stage again (Snakemake did not take anything it left as complete)
    assert f"rule {stage.rule}:" in record["rerun_output"]


def test_after_a_killed_snakemake_the_lock_is_refused_until_unlock(killed_run):
    _, records = killed_run
    refused = records[STAGES[0].rule]["refused"]
    assert refused.returncode != 0 and "Directory cannot be locked" in output_of(refused)
    assert "--unlock" in output_of(refused)  # Snakemake's message says what to do
    for stage in STAGES:
        if stage.kill == "group":
            unlock = records[stage.rule]["unlock"]
            assert unlock.returncode == 0 and "Unlocked working directory" in output_of(unlock)


@pytest.mark.parametrize("stage", [s for s in STAGES if s.resume], ids=lambda s: s.rule)
def test_killed_training_resumes_from_its_checkpoint_to_the_same_weights(killed_run, reference_run, stage):
    workdir, _ = killed_run
    run, reference = workdir / RUN, reference_run / RUN
    checkpoint, log_csv = (run / name for name in stage.outputs)
    log = (run / "logs" / f"{stage.rule}.log").read_text()
    assert f"from {RUN}/{stage.resume} after epoch 1" in log  # resumed, not started over
    assert [row["epoch"] for row in log_rows(log_csv)] == [1, 2]  # each epoch once
    assert log_rows(log_csv) == log_rows(reference / stage.outputs[1])
    assert_same_weights(reference / stage.outputs[0], checkpoint)
    assert not (run / stage.resume).exists()  # the resume state goes once training is done


@pytest.mark.parametrize("stage", [s for s in STAGES if not s.resume], ids=lambda s: s.rule)
def test_rerun_of_a_killed_stage_writes_what_an_uninterrupted_run_writes(killed_run, reference_run, stage):
    workdir, _ = killed_run
    for name in stage.outputs:
        if name.startswith("maps/") and name != "maps/overlays":
            assert assert_same_maps(reference_run / RUN / name, workdir / RUN / name) == reliability_config()["synthetic"]["num_train_aug"]
        else:
            assert assert_same_pngs(reference_run / RUN / name, workdir / RUN / name) > 0


def test_no_temporaries_are_left_once_the_rerun_completes(killed_run):
    workdir, _ = killed_run
    assert temporaries(workdir / RUN) == []
