"""One process of the distributed-equivalence tests (started by torch.multiprocessing.spawn)."""
import torch
import torch.distributed as dist
from torch import nn

from taskshare import HardSharing, MultiTaskDataset, Task, TrainConfig, fit, fit_multitask
from taskshare.balancing import build_balancer

CFG = dict(epochs=3, batch_size=32, min_steps=0, progress=False, device="cpu", seed=0, patience=100, lr=1e-3)


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(161, 6, generator=g)        # 128 to train on, 33 to validate (an odd split between two)
    return x, (x[:, 0] > 0).long(), x[:, 1] * 2 - x[:, 2]


def train(case: str) -> list[torch.Tensor]:
    """Parameters (and a balancing method's state) after training, on the CPU; `case` names what is
    trained, with "@cuda" (gloo between processes on one GPU), "@fp16" (CUDA, half precision with a
    grad scaler) or "@cpu-fp16" after it."""
    case, _, where = case.partition("@")
    cfg = dict(CFG, device="cuda" if where in ("cuda", "fp16") else "cpu", amp="fp16" if "fp16" in where else "off")
    torch.manual_seed(0)
    x, ya, yb = data()
    tr, va = slice(0, 128), slice(128, None)
    if case == "accumulate":         # 121 rows: the last batch (25) splits 13 / 12, inside a window of 2
        model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 2))
        fit(model, Task("a", num_classes=2), (x[:121], ya[:121]), (x[va], ya[va]), TrainConfig(**cfg, accumulate=2))
        return [p.detach().cpu().clone() for p in model.parameters()]
    if case in ("plain", "dataset"):
        model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 2))
        train_data = (x[tr], ya[tr]) if case == "plain" else torch.utils.data.TensorDataset(x[tr], ya[tr])
        fit(model, Task("a", num_classes=2), train_data, (x[va], ya[va]), TrainConfig(**cfg))
        return [p.detach().cpu().clone() for p in model.parameters()]
    tasks = [Task("a", num_classes=2), Task("b", "regression")]
    model = HardSharing(nn.Sequential(nn.Linear(6, 16), nn.Tanh()), tasks, in_features=16)
    if case.startswith("per-task"):  # one dataset per task, batches drawn by a sampler
        # "-famo": single-task batches, the other task absent; "-upgrad": joint batches, every task
        method = build_balancer(case.removeprefix("per-task-"), 2) if case != "per-task" else None
        train_data = {"a": (x[:96], ya[:96]), "b": (x[32:128], yb[32:128])}
        fit_multitask(model, tasks, train_data, {"a": (x[va], ya[va]), "b": (x[va], yb[va])}, TrainConfig(**cfg),
                      sampler=None if case.endswith("upgrad") else "temperature", balancer=method)
        state = [] if method is None else list(method.state_dict().values())
        return [t.detach().cpu().clone() for t in [*model.parameters(), *state]]
    if case.endswith("-missing"):     # labels missing at random: shards hold different numbers of them
        case = case.removesuffix("-missing")
        g = torch.Generator().manual_seed(1)
        ya = torch.where(torch.rand(len(ya), generator=g) < 0.3, -1, ya)
        yb = torch.where(torch.rand(len(yb), generator=g) < 0.5, float("nan"), yb)
    method = build_balancer(case.removesuffix("-rep"), 2)
    fit_multitask(model, tasks, MultiTaskDataset(x[tr], {"a": ya[tr], "b": yb[tr]}),
                  MultiTaskDataset(x[va], {"a": ya[va], "b": yb[va]}), TrainConfig(**cfg),
                  balancer=method, representation=case.endswith("-rep"))
    return [t.detach().cpu().clone() for t in [*model.parameters(), *method.state_dict().values()]]


def worker(rank: int, world: int, store: str, case: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        torch.save(train(case), f"{out}/rank{rank}.pt")
    finally:
        _leave()


def poisoned(x: torch.Tensor) -> torch.Tensor:
    """An input augmentation that makes the loss infinite for the batch holding training row 77 (one
    process's share only, under two processes)."""
    marker = data()[0][77]
    hit = (x == marker).all(1)
    return torch.where(hit[:, None], torch.full_like(x, float("inf")), x)


def train_interrupted(out: str, stop_at: int | None, resume: bool, skip_poison: bool = False) -> list[torch.Tensor]:
    """Plain training with run checkpoints; `stop_at`: this process sends itself SIGTERM at that step."""
    import os
    import signal
    calls = []

    def augment(x):
        calls.append(1)
        if stop_at is not None and len(calls) == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return poisoned(x) if skip_poison else x

    torch.manual_seed(0)
    x, ya, _ = data()
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 2))
    cfg = TrainConfig(**CFG, checkpoint_dir=f"{out}/ckpt", resume=resume, nonfinite="skip" if skip_poison else "stop")
    fit(model, Task("a", num_classes=2), (x[:128], ya[:128]), (x[128:], ya[128:]), cfg, augment=augment)
    return [p.detach().clone() for p in model.parameters()]


def worker_interrupt(rank: int, world: int, store: str, case: str, out: str) -> None:
    """case "sigterm": rank 1 alone gets SIGTERM at step 5; every process must leave with code 143 after
    rank 0 saved, and a second launch resumes. case "poison": one process's shard has an infinite loss;
    both skip that step together."""
    from taskshare.distributed import main_thread_signals
    with main_thread_signals():
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        if case == "poison":
            torch.save(train_interrupted(out, None, False, skip_poison=True), f"{out}/rank{rank}.pt")
            return
        try:
            train_interrupted(out, 5 if rank == 1 else None, False)
            code = 0
        except SystemExit as exit_:
            code = int(exit_.code)
        with open(f"{out}/code{rank}.txt", "w") as f:
            f.write(str(code))
        dist.barrier()
        torch.save(train_interrupted(out, None, True), f"{out}/rank{rank}.pt")
    finally:
        _leave()


def worker_cli(rank: int, world: int, store: str, argv: list, out: str) -> None:
    """`taskshare ...` in one of several processes (the group joined here with gloo, as torchrun would)."""
    from taskshare.cli import main
    torch.set_num_threads(1)                     # two processes on a small machine: no oversubscription
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        code = main(list(argv))
        with open(f"{out}/cli{rank}.txt", "w") as f:
            f.write(str(code))
    finally:
        _leave()


def _leave() -> None:
    """Leave the group together: a process tearing gloo down while another still talks may abort."""
    try:
        dist.barrier()
    finally:
        dist.destroy_process_group()


def spawn(fn, args: tuple, nprocs: int = 2, timeout: float = 180.0) -> None:
    """torch.multiprocessing.spawn with a time bound: a hang (a collective one process never joins)
    fails the test instead of stalling the suite; the processes are stopped."""
    import time

    import torch.multiprocessing as mp
    context = mp.start_processes(fn, args=args, nprocs=nprocs, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for p in context.processes:
                if p.is_alive():
                    p.kill()
            raise TimeoutError(f"{nprocs} processes of {fn.__name__} still running after {timeout:.0f} s")


def worker_hang(rank: int, world: int, store: str) -> None:
    """Rank 0 waits in a barrier that rank 1 never reaches."""
    import time
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    if rank == 0:
        dist.barrier()
    else:
        time.sleep(600)
