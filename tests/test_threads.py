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
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "PASSIVE"
    run = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                         capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "ACTIVE"
