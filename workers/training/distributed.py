"""Data parallelism for one job over W processes, with torch.distributed as launched by torchrun.

    torchrun --nproc-per-node 2 -m workers.training CONFIG          # two ranks here (gloo on CPU)
    torchrun --nnodes 2 --node-rank R --rdzv-backend c10d --rdzv-endpoint HOST:PORT --nproc-per-node N …

What each rank does (grpo.py, loop.py): the step's prompts are cut into W contiguous shares (a group
never spans ranks); each rank samples, scores and computes log-probs for its share; the counts that
normalise the loss (sequences, tokens) are summed over ranks first, so each rank's loss is its share
of the whole-batch loss and the all-reduced (summed) LoRA gradients equal the single-process ones;
every rank then clips and steps identically. Sampling is keyed per prompt (seed, step, position in
the step), so a prompt's rollouts do not depend on which rank drew it — one rank and two ranks give
the same update. Rank 0 alone calls the hooks (metrics, rollouts, evaluations, stop requests — a stop
is broadcast so all ranks stop at the same step) and writes checkpoints and the adapter; the data
cursor in a checkpoint is global, so a job resumes on any world size.

The LoRA parameters are small (tens of MB for a 2B model), so an explicit all-reduce of their gradients
is all DDP would do here, without its module wrapping around a peft model. FSDP2 sharding of the frozen
base — for a model whose rollouts do not fit one device — would wrap the decoder layers in `build_run`
after LoRA is attached (`fully_shard` per layer, LoRA params replicated); not built yet.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, count: int) -> tuple[int, int]:
        """[start, end) of this rank's contiguous share of `count` prompts (the first ranks take one more)."""
        base, extra = divmod(count, self.size)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (1 if self.rank < extra else 0)


def init_from_env(device: str = "auto") -> World:
    """Join the process group torchrun describes (WORLD_SIZE > 1), else a world of one. Idempotent."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and device != "cpu"
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return World(rank, size, local_rank)


def current() -> World:
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return World()


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum of a few numbers over all ranks (the numbers themselves on a world of one)."""
    if current().size == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def all_sum_grads(params: list[torch.nn.Parameter]) -> None:
    """Sum every parameter's gradient over all ranks, in one flat buffer (LoRA grads are small)."""
    if current().size == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(g).clone()
        offset += n


def broadcast(value: Any) -> Any:
    """Rank 0's `value` on every rank (a stop request, say)."""
    if current().size == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if current().size > 1:
        dist.barrier()


def shutdown() -> None:
    """Leave the process group (before the process exits, so the launcher sees a clean end)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def prompt_generator(seed: int, step: int, position: int, device: torch.device) -> torch.Generator:
    """The random stream of prompt number `position` of step `step`: the same on whichever rank draws it."""
    generator = torch.Generator(device=device)
    # a job's seed may be any 63-bit number: the mix is folded back into the range manual_seed takes
    generator.manual_seed(((seed * 1_000_003 + step) * 1_000_033 + position) % (2**63))
    return generator
