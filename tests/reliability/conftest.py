"""Fixtures of the reliability suite: two runs of the same config in two results folders.

``reference_run`` runs the chain start to end; ``killed_run`` runs it with a
kill -9 in each long stage (see test_kill_resume.py). The kill tests compare the
second against the first; the determinism tests compare everything they share.
"""

import pytest

from helpers.reliability import (
    CHAIN_TARGETS,
    STAGES,
    PausedRun,
    output_of,
    pid_alive,
    run_snakemake,
    snapshot,
    write_config,
)


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory):
    """The reliability config run once, start to end, without faults (the chain up to DeepLab's predictions)."""
    workdir = tmp_path_factory.mktemp("reference")
    write_config(workdir)
    result = run_snakemake(workdir, *CHAIN_TARGETS)
    assert result.returncode == 0, output_of(result)[-4000:]
    return workdir


@pytest.fixture(scope="session")
def killed_run(tmp_path_factory):
    """The chain, killed once in each long stage and rerun each time with the same command."""
    workdir = tmp_path_factory.mktemp("killed")
    write_config(workdir)
    records: dict[str, dict] = {}
    previous = None
    for stage in STAGES:
        run = PausedRun(workdir, CHAIN_TARGETS, stage.module, stage.function, stage.match, stage.after)
        try:
            marker = run.wait_paused()
            record = {"marker": marker}
            if stage.kill == "group":
                run.kill_group()
                record["job_alive"] = pid_alive(marker["pid"])
                if not any("refused" in r for r in records.values()):  # once is enough
                    # the same command again is refused: the killed snakemake could not release its lock
                    record["refused"] = run_snakemake(workdir, *CHAIN_TARGETS)
                record["unlock"] = run_snakemake(workdir, *CHAIN_TARGETS, "--unlock")
            else:
                record["snakemake_status"] = run.kill_job(marker["pid"])
            record.update(snapshot(workdir, stage))
            record["output"] = run.output()
        finally:
            run.close()
        if previous is not None:
            records[previous]["rerun_output"] = record["output"]
        records[stage.rule] = record
        previous = stage.rule
    final = run_snakemake(workdir, *CHAIN_TARGETS)
    assert final.returncode == 0, output_of(final)[-4000:]
    records[previous]["rerun_output"] = output_of(final)
    return workdir, records
