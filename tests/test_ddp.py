"""Data-parallel training under torchrun: two CPU processes (gloo) stay bit-identical replicas."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training.networks import QNetwork
from training.runner import load_run
from training.sampler import make_synthetic_store

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("algo", ["am", "gcbc"])
def test_two_processes_keep_identical_replicas(tmp_path, algo):
    """GCBC runs with a weight average: the replicas' averages are compared too (GCBC.modules)."""
    store = make_synthetic_store(tmp_path / "store", episodes=6, steps=10)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    extra = ["--set", "gcbc.ema_decay=0.9"] if algo == "gcbc" else []
    cmd = [sys.executable, "-m", "training.commands.train", "--nproc", "2", "--data", str(store), "--out", str(run),
           "--algo", algo, "--debug", "--steps", "6", "--set", "batch_size=8", "--set", "checkpoint_every=3", "--no-progress",
           *extra]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    ckpt = torch.load(run / "checkpoints" / "step_00000006.pt", weights_only=True)
    assert ckpt["world_size"] == 2
    digests = ckpt["replica_digests"]
    assert len(digests) == 2 and digests[0] == digests[1], "replicas diverged"
    # the two processes drew different data (their own share of the batch)
    assert ckpt["rng"][0]["sampler"] != ckpt["rng"][1]["sampler"]
    if algo == "gcbc":
        assert "average" in ckpt["algorithm"] and ckpt["config"]["gcbc"]["ema_decay"] == 0.9
        return
    # and training moved the parameters away from their shared initialisation
    torch.manual_seed(ckpt["config"]["seed"])
    init = QNetwork(load_run(run).network)
    trained = load_run(run).model
    assert any(not torch.equal(a, b) for a, b in zip(init.state_dict().values(), trained.state_dict().values(), strict=True))
    assert (run / "metrics.csv").is_file()
