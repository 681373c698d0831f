"""Two processes (gloo, CPU), each with half of every batch, end with the parameters one process
reaches with the full batch: plain training, a loss-weighting method, gradient methods."""
import pytest
import torch
import torch.multiprocessing as mp

from taskshare.distributed import shard, world
from tests.train.ddp_worker import train, worker


@pytest.mark.parametrize("case", ["plain", "uncertainty", "upgrad", "mgda-rep"])
def test_two_processes_match_one_with_the_full_batch(tmp_path, case):
    single = train(case)
    mp.spawn(worker, args=(2, str(tmp_path / "store"), case, str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        replica = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for a, b in zip(single, replica):
            assert torch.allclose(a, b, atol=1e-5), (case, rank, (a - b).abs().max())
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(a, b) for a, b in zip(r0, r1))     # replicas stay identical


def test_alone_the_shard_is_the_whole_batch():
    assert world() == (0, 1)
    assert torch.equal(shard(torch.arange(5)), torch.arange(5))
