"""Thread pools sized to the work: one thread for small steps, the user's setting wins."""

from __future__ import annotations

import os

import torch

from exprssl import threads


def test_small_steps_run_on_one_thread_and_the_user_wins(monkeypatch):
    monkeypatch.delenv("EXPRSSL_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.threads_for(1e8) == 1
    monkeypatch.setattr(threads, "free_cores", lambda: 2)
    assert threads.threads_for(1e10) == 2
    monkeypatch.setattr(threads, "free_cores", lambda: 1)
    assert threads.threads_for(1e10) == 1  # larger steps: only the cores free right now
    monkeypatch.setenv("EXPRSSL_THREADS", "3")
    assert threads.threads_for(1e8) == 3 and threads.threads_for(1e12) == 3


def test_limit_threads_restores_the_previous_size():
    before = torch.get_num_threads()
    with threads.limit_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_importing_exprssl_sets_passive_waiting_unless_chosen():
    import subprocess
    import sys

    code = "import exprssl, os; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert run.stdout.strip() == "PASSIVE"
    run = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.strip() == "ACTIVE"


def test_busy_cores_count_only_the_cores_this_process_may_use():
    """A job pinned to cpus 2-3 of a node whose cpus 0-1 are saturated has both of its own free;
    guest time (already inside user time) is not counted twice."""
    stat = (
        "cpu  900 0 0 100 0 0 0 0 50 0\n"
        "cpu0 400 0 0 0 0 0 0 0 50 0\n"
        "cpu1 400 0 0 0 0 0 0 0 0 0\n"
        "cpu2 50 0 0 50 0 0 0 0 0 0\n"
        "cpu3 50 0 0 50 0 0 0 0 0 0\n"
        "intr 12345 0 0\n"
    )
    assert threads._cpu_times(stat, {2, 3}) == (200.0, 100.0)
    assert threads._cpu_times(stat, None) == (1000.0, 100.0)
