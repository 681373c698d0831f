"""Two processes (gloo, CPU), each with half of every batch, end with the parameters one process
reaches with the full batch: plain training (in-memory arrays and a generic Dataset), one dataset per
task, loss-weighting methods (linear, nonlinear, stateful) and gradient methods; validation is split
between the processes and its metrics gathered, so early stopping and best weights agree."""
import pytest
import torch

from taskshare.distributed import shard, world
from tests.train.ddp_worker import spawn, train, worker


CASES = ["plain", "dataset", "accumulate", "per-task", "per-task-famo", "per-task-upgrad", "uncertainty", "famo",
         "gradnorm", "gls", "upgrad", "mgda-rep",
         "plain@cpu-fp16", "upgrad@cpu-fp16", "equal-missing", "famo-missing", "upgrad-missing", "mgda-rep-missing"]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_two_processes_match_one_with_the_full_batch(tmp_path, case):
    single = train(case)
    spawn(worker, (2, str(tmp_path / "store"), case, str(tmp_path)))
    for rank in (0, 1):
        replica = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        # half precision rounds half batches differently; FAMO's Adam on its logits divides by tiny
        # second moments, which magnifies float rounding (1e-3 off without the label weighting)
        tol = 1e-2 if "fp16" in case else 1e-4 if "famo" in case else 1e-5
        assert len(single) == len(replica) > 0
        for a, b in zip(single, replica):
            assert torch.allclose(a, b, atol=tol), (case, rank, (a - b).abs().max())
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(a, b) for a, b in zip(r0, r1))     # replicas stay identical


def test_alone_the_shard_is_the_whole_batch():
    assert world() == (0, 1)
    assert torch.equal(shard(torch.arange(5)), torch.arange(5))


@pytest.mark.slow
def test_sigterm_at_one_process_stops_all_at_the_same_step_and_the_run_resumes(tmp_path):
    from tests.train.ddp_worker import train_interrupted, worker_interrupt
    from torch.multiprocessing import ProcessExitedException
    single = train_interrupted(str(tmp_path / "single"), None, False)
    # About one run in four on a loaded 2-core machine, the process that got the signal aborts later in
    # gloo ("terminate called without an active exception", SIGABRT) after the agreed save; not yet
    # traced. One fresh retry on that abort alone; any other failure, or a second abort, fails.
    for attempt in range(2):
        out = tmp_path / f"attempt{attempt}"
        out.mkdir()
        try:
            spawn(worker_interrupt, (2, str(out / "store"), "sigterm", str(out)))
            break
        except ProcessExitedException as error:
            if attempt or error.signal_name != "SIGABRT":
                raise
    assert [(out / f"code{r}.txt").read_text() for r in (0, 1)] == ["143", "143"]
    assert (out / "ckpt" / "step-000000005.pt").exists()    # saved at the agreed step, resumed from it
    for rank in (0, 1):
        replica = torch.load(out / f"rank{rank}.pt", weights_only=True)
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(single, replica)), rank


@pytest.mark.slow
def test_a_nonfinite_loss_at_one_process_is_skipped_by_all(tmp_path, caplog):
    from tests.train.ddp_worker import train_interrupted, worker_interrupt
    import logging
    with caplog.at_level(logging.WARNING, logger="taskshare"):
        single = train_interrupted(str(tmp_path / "single"), None, False, skip_poison=True)
    assert caplog.text.count("is not finite") == 3             # row 77's batch, once per epoch
    spawn(worker_interrupt, (2, str(tmp_path / "store"), "poison", str(tmp_path)))
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(a, b) for a, b in zip(r0, r1))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(single, r0))


@pytest.mark.parametrize("size", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [0, 1, 5, 7, 64])
def test_shards_and_evaluation_parts_cover_every_row_once_in_rank_order(monkeypatch, size, n):
    """What each of `size` processes takes of a batch and of an evaluation, with the rank faked."""
    import taskshare.distributed as distributed
    batches, spans = [], []
    for rank in range(size):
        monkeypatch.setattr(distributed, "world", lambda rank=rank: (rank, size))
        batches.append(distributed.shard(torch.arange(n)).tolist())
        spans.append(list(distributed.span(n)))
        part = distributed.evaluation_part(n)
        assert (part is None) if not 1 < size <= n else list(part) == spans[-1]
    assert sum(batches, []) == list(range(n)) and sum(spans, []) == list(range(n))
    assert max(map(len, spans)) - min(map(len, spans)) <= 1     # evaluation work split evenly
