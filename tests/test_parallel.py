import os

import pytest

from mctformer.parallel import map_in_processes, worker_pool


def square_and_pid(value: int) -> tuple[int, int]:
    return value * value, os.getpid()


@pytest.mark.parametrize("workers", [1, 2])
def test_results_come_in_job_order(workers):
    results = list(map_in_processes(square_and_pid, range(20), workers, chunksize=3))
    assert [value for value, _ in results] == [i * i for i in range(20)]
    in_here = {pid for _, pid in results} == {os.getpid()}
    assert in_here == (workers == 1)


def test_a_shared_pool_serves_several_maps():
    with worker_pool(2) as pool:
        first = [value for value, _ in map_in_processes(square_and_pid, [1, 2], pool=pool)]
        second = [value for value, _ in map_in_processes(square_and_pid, [3], pool=pool)]
    assert (first, second) == ([1, 4], [9])
    with worker_pool(1) as none:
        assert none is None
