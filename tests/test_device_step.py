"""The GPU training path (training/device_step.py): same batches as the host path, same updates, graph replays.

The feed's gather and shift run on any device, so CI checks on the CPU that the store-in-memory
feed draws exactly the batches `runner.to_torch` draws and that a DeviceStep update equals the
host update bit for bit. The CUDA graph tests need a GPU and are skipped without one.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from robot_app.store import Store
from training.device_step import IMAGE_KEYS, DeviceFeed, DeviceStep
from training.gcbc import GCBC
from training.runner import TrainConfig, build_algorithm, effective_sampler, resolve_config, to_torch, train
from training.sampler import GoalSampler, SamplerConfig, make_synthetic_store

CPU = torch.device("cpu")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    return Store.open(make_synthetic_store(tmp_path_factory.mktemp("store") / "s", episodes=8, steps=12))


def pair(store: Store, seed: int = 3):
    """Two samplers and two shift generators in the same state."""
    cfg = SamplerConfig(p_chain=0.3)
    samplers = [GoalSampler(store, cfg, seed=seed) for _ in range(2)]
    gens = [torch.Generator().manual_seed(seed + 2) for _ in range(2)]
    return samplers, gens


@pytest.mark.parametrize(("pad", "aligned", "hue", "hue_keys"), [
    (4, False, 0.0, IMAGE_KEYS), (4, True, 0.0, IMAGE_KEYS), (0, False, 0.0, IMAGE_KEYS),
    (4, False, 1.0, GCBC.image_inputs), (4, True, 0.5, IMAGE_KEYS), (0, False, 1.0, IMAGE_KEYS),
])
def test_device_feed_draws_the_host_paths_batches(store, pad, aligned, hue, hue_keys):
    (host_sampler, dev_sampler), (host_gen, dev_gen) = pair(store)
    feed = DeviceFeed(store, CPU, pad, aligned, height_input=False, hue=hue, hue_keys=hue_keys)
    for _ in range(3):
        host = to_torch(host_sampler.sample(32), CPU, pad, host_gen, aligned, hue, hue_keys)
        dev = feed.gather(feed.draw(dev_sampler, 32, dev_gen))
        assert set(dev) == set(host)
        for key, value in host.items():
            assert dev[key].dtype == value.dtype, key
            assert torch.equal(dev[key], value), f"{key} differs from the host path's batch"
    assert host_sampler.get_state() == dev_sampler.get_state()
    assert torch.equal(host_gen.get_state(), dev_gen.get_state())


def test_device_step_update_equals_the_host_update_on_cpu(store):
    c = replace(TrainConfig(batch_size=16, seed=0, precision="fp32"), **_tiny())
    (host_sampler, dev_sampler), (host_gen, dev_gen) = pair(store)
    host_algo, dev_algo = build_algorithm(c, CPU), build_algorithm(c, CPU)
    step = DeviceStep(dev_algo, DeviceFeed(store, CPU, 4, False, False), dev_sampler, dev_gen, 16)
    assert not step.use_graph  # graphs are a CUDA thing; on the CPU the step is the plain update
    for _ in range(3):
        a = host_algo.update(to_torch(host_sampler.sample(16), CPU, 4, host_gen))
        b = step()
        assert {k: float(v) for k, v in a.items()} == {k: float(v) for k, v in b.items()}
    for x, y in zip(host_algo.parameters(), dev_algo.parameters(), strict=True):
        assert torch.equal(x, y)


def _tiny() -> dict:
    c = resolve_config(debug=True)
    return {"network": c.network, "am": c.am, "cem": c.cem}


@cuda
@pytest.mark.parametrize(("algo", "hue", "ema"), [("am", 0.0, 0.0), ("gcbc", 0.0, 0.0), ("gcivl", 0.0, 0.0), ("gcbc", 1.0, 0.0),
                                                  ("gcbc", 0.0, 0.9)])
def test_graph_replays_train_like_eager_updates_on_the_gpu(store, algo, hue, ema):
    """Same seed, same batches: the graphed run's parameters track the eager run's (bf16 kernels: to a tolerance).
    With hue turns the graph holds the turn too (its constants made before capture); with a
    weight average, the graph holds its update (the warm-up decay is a tensor, not a constant)."""
    gpu = torch.device("cuda")
    c = replace(TrainConfig(algo=algo, batch_size=32, seed=0, precision="fp32"), **_tiny())
    c = replace(c, gcbc=replace(c.gcbc, ema_decay=ema))
    results = []
    for graph in (False, True):
        sampler, gen = GoalSampler(store, effective_sampler(c), seed=1), torch.Generator().manual_seed(3)
        algo_obj = build_algorithm(c, gpu)
        feed = DeviceFeed(store, gpu, 4, False, False, hue=hue, hue_keys=algo_obj.image_inputs)
        step = DeviceStep(algo_obj, feed, sampler, gen, 32, graph=graph, warmup=2)
        losses = [float(next(iter(step().values()))) for _ in range(12)]
        assert step.graphed == graph
        averaged = list(algo_obj.average.module.parameters()) if ema else []
        results.append((losses, [p.detach().clone() for p in [*algo_obj.parameters(), *averaged]]))
    (eager_loss, eager_params), (graph_loss, graph_params) = results
    assert graph_loss == pytest.approx(eager_loss, rel=1e-3, abs=1e-4)
    for x, y in zip(eager_params, graph_params, strict=True):
        assert torch.allclose(x, y, rtol=1e-3, atol=1e-4)


@cuda
def test_graphed_run_resumes_where_it_stopped(tmp_path):
    data = make_synthetic_store(tmp_path / "store", episodes=8, steps=12)
    common = {"algo": "am", "debug": True, "data": str(data), "overrides": ["checkpoint_every=10", "log_every=5", "precision=fp32"]}
    train(resolve_config(steps=30, **common), tmp_path / "straight", progress=False)
    train(resolve_config(steps=20, **common), tmp_path / "split", progress=False)
    train(resolve_config(steps=30, **common), tmp_path / "split", resume=True, progress=False)
    a = torch.load(Path(tmp_path / "straight/checkpoints/step_00000030.pt"), weights_only=True)["algorithm"]
    b = torch.load(Path(tmp_path / "split/checkpoints/step_00000030.pt"), weights_only=True)["algorithm"]
    for net in ("q1", "q2", "t1", "t2"):
        for name, tensor in a[net].items():
            assert torch.allclose(tensor, b[net][name], rtol=1e-4, atol=1e-5), f"{net}.{name} differs after resume"


@pytest.mark.parametrize("algo", ["am", "gcbc", "gcivl"])
def test_a_gpu_runs_optimizer_state_resumes_on_the_cpu(store, algo):
    """A checkpoint written by the graphed GPU path carries Adam's fused/capturable flags; a CPU
    resume must keep its own way of stepping (torch would restore the flags and fail on the CPU)."""
    c = replace(TrainConfig(algo=algo, batch_size=16, seed=0, precision="fp32"), **_tiny())
    sampler, gen = GoalSampler(store, effective_sampler(c), seed=1), torch.Generator().manual_seed(3)
    source = build_algorithm(c, CPU)
    source.update(to_torch(sampler.sample(16), CPU, 4, gen))
    state = source.state_dict()
    for group in state["optimizer"]["param_groups"]:
        group.update(fused=True, capturable=True, foreach=False)  # as the GPU path saves them
    resumed = build_algorithm(c, CPU)
    resumed.load_state_dict(state)
    assert all(not g.get("capturable") and not g.get("fused") and g.get("foreach") for g in resumed.optimizer.param_groups)
    before = [p.detach().clone() for p in resumed.parameters()]
    resumed.update(to_torch(sampler.sample(16), CPU, 4, gen))
    assert any(not torch.equal(a, b) for a, b in zip(before, resumed.parameters(), strict=True))
