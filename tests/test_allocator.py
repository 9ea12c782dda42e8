"""The scoped allocator thresholds of Dask block tasks (modal_ally._allocator)."""

import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from modal_ally import _allocator

ROOT = str(Path(__file__).resolve().parents[1])

_FAULTS = """
import resource, torch
from modal_ally._allocator import steady_heap, steady_heap_applies

def faults_of_allocations(values):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):  # 20 tensors, each written and freed
        torch.empty(values).fill_(1.0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults_of_allocations(2**20)
outside = faults_of_allocations(2**20)  # 4 MiB
with steady_heap():
    faults_of_allocations(2**20)
    inside = faults_of_allocations(2**20)
# after: a size the block never allocated (24 MiB, under the lifted 32 MiB threshold),
# so no free chunk of the arena can serve it: only the restored threshold maps it
after = faults_of_allocations(6 * 2**20) / 6
print(steady_heap_applies(), outside, inside, int(after))
"""


def _run(env_changes):
    env = {k: v for k, v in os.environ.items()
           if k not in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_",
                        "MODAL_ALLY_STEADY_HEAP", "GLIBC_TUNABLES")}
    env.update(env_changes)
    out = subprocess.run([sys.executable, "-c", _FAULTS], env=env, check=True, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    applies, outside, inside, after = out.stdout.split()
    return applies == "True", int(outside), int(inside), int(after)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc tunables")
def test_inside_a_block_task_large_tensors_reuse_memory_and_the_setting_comes_back():
    """Under Dask's worker setting every 4 MiB tensor is faulted in afresh (about 1,024
    faults each); inside :func:`steady_heap` the memory is reused; after it the
    environment's thresholds are back: a 24 MiB tensor is a fresh mapping each time
    (per 4 MiB, as many faults as outside; with the lifted thresholds it would come
    from the heap and be reused). Memory the arena already holds may serve later
    allocations without faults, which is why the check after uses a new size."""
    if _allocator._glibc() is None:
        pytest.skip("the C library is not glibc")
    applies, outside, inside, after = _run({"MALLOC_TRIM_THRESHOLD_": "65536"})
    assert applies
    assert outside > 20 * 1024 * 0.8, outside
    assert inside < 20 * 1024 * 0.1, inside
    assert after > 20 * 1024 * 0.8, after


@pytest.mark.parametrize("env", [{}, {"MALLOC_TRIM_THRESHOLD_": "65536",
                                      "MODAL_ALLY_STEADY_HEAP": "0"},
                                 {"MALLOC_TRIM_THRESHOLD_": "65536",
                                  "MALLOC_MMAP_THRESHOLD_": "131072"}])
def test_it_leaves_the_allocator_alone_unless_dask_s_setting_is_the_only_one(env):
    """Without ``MALLOC_TRIM_THRESHOLD_`` (glibc's adaptive thresholds), with the opt-out,
    or with an mmap threshold the user set: nothing is changed."""
    applies, *_ = _run(env)
    assert not applies


class _FakeLibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, parameter, value):
        self.calls.append(("mallopt", parameter, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("malloc_trim", pad))
        return 1


def test_nested_and_concurrent_uses_set_once_and_restore_once(monkeypatch):
    """Two threads inside at once, one of them nested, one failing: the thresholds are
    lifted when the first enters and restored to the environment's values (then
    ``malloc_trim(0)``) only when the last leaves."""
    fake = _FakeLibc()
    monkeypatch.setattr(_allocator, "_libc", fake)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MODAL_ALLY_STEADY_HEAP", raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    inside, release = threading.Event(), threading.Event()

    def other():
        with pytest.raises(RuntimeError), _allocator.steady_heap():
            inside.set()
            release.wait(10)
            raise RuntimeError("a failing block")

    thread = threading.Thread(target=other)
    thread.start()
    inside.wait(10)
    with _allocator.steady_heap(), _allocator.steady_heap():
        release.set()
        thread.join(10)
        assert fake.calls == [("mallopt", -3, 32 * 2**20), ("mallopt", -1, 2**30)]
    assert fake.calls[2:] == [("mallopt", -1, 65536), ("mallopt", -3, 128 * 1024),
                              ("malloc_trim", 0)]
    assert _allocator._depth == 0


def test_block_tasks_keep_their_names_and_pickle_by_reference():
    from modal_ally.distributed import _baselines, _pool, _select

    for function in (_select.seeding_block, _select.coreset_block, _pool.ally_block,
                     _baselines._check_block):
        assert pickle.loads(pickle.dumps(function)) is function
        assert function.__wrapped__.__name__ == function.__name__
