"""Cost of one SAM / CrAM+ step over Adam relative to one Adam step on a BERT question-answering model.

A BERT-Tiny-shaped ``BertForQuestionAnswering`` (2 layers, hidden 128, 2 heads, intermediate 512;
random weights, nothing downloaded) on synthetic token batches (default batch 16, sequence 384 as CrAM App. D),
the span loss of Transformers' QA head, embeddings frozen as in CrAM App. D. The prunable set
is ``bert_encoder``; CrAM+ runs uniform Top-K at 50 % over it. Every method gets its own copy of
the same model; steps are interleaved round by round so that drift in machine load hits all
methods alike; the median of ``--rounds`` timed steps after ``--warmup`` steps is reported, and the
median over rounds of each round's ratio to Adam. Two forward-backward passes make 2.0 the floor
for SAM and CrAM+ (the target: at most 2.1x Adam).

    python benchmarks/bench_bert_step.py [--rounds 15] [--warmup 3] [--batch 16] [--seq 384] [--threads N]
"""
from __future__ import annotations

import argparse
import copy
import functools
import platform
import statistics
import sys
import time
from typing import Callable

import torch
from torch import nn

import compressible.optim  # noqa: F401  (registers the METHODS)
from compressible.compress.prunable import prunable_parameters
from compressible.registry import METHODS

PASS = "one forward-backward (no step)"
ADAM = {"base": "adam", "lr": 3e-5}
# label -> (METHODS name, method kwargs); ρ as CrAM App. D states them (SAM 0.01, CrAM 0.005)
CASES = {
    "adam": ("adam", {"lr": 3e-5}),
    "sam (adam)": ("sam", {**ADAM, "rho": 0.01}),
    "cram_plus (adam, k50 uniform)": ("cram_plus", {**ADAM, "rho": 0.005, "sparsity": 0.5, "topk_scope": "uniform"}),
}


def tiny_bert() -> nn.Module:
    import transformers

    config = transformers.BertConfig(vocab_size=30522, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=512, max_position_embeddings=512)
    model = transformers.BertForQuestionAnswering(config)
    for p in model.bert.embeddings.parameters():
        p.requires_grad_(False)
    return model.train()


def make_closure(model: nn.Module, opt, batch: dict) -> Callable[..., torch.Tensor]:
    """The trainer's closure protocol (``track_bn_stats`` has nothing to freeze in BERT)."""
    def closure(track_bn_stats: bool = True) -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = model(**batch).loss
        loss.backward()
        return loss.detach()
    return closure


def synthetic_batch(batch: int, seq: int) -> dict:
    g = torch.Generator().manual_seed(0)
    starts = torch.randint(0, seq // 2, (batch,), generator=g)
    return {"input_ids": torch.randint(1000, 30522, (batch, seq), generator=g),
            "token_type_ids": (torch.arange(seq) >= seq // 4).long().expand(batch, seq),
            "attention_mask": torch.ones(batch, seq, dtype=torch.long),
            "start_positions": starts, "end_positions": starts + torch.randint(0, 8, (batch,), generator=g)}


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=384, help="tokens per sequence (384: CrAM App. D's max_seq_length)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base, batch = tiny_bert(), synthetic_batch(args.batch, args.seq)
    steps = {}
    for label, (name, kwargs) in CASES.items():
        model = copy.deepcopy(base)
        opt = METHODS.get(name)(model, prunable_parameters(model, "bert_encoder"), seed=0, **kwargs)
        steps[label] = functools.partial(opt.step, make_closure(model, opt, batch))
    model = copy.deepcopy(base)
    steps[PASS] = make_closure(model, torch.optim.SGD(model.parameters(), lr=0.0), batch)
    times = {label: [] for label in steps}
    for i in range(args.warmup + args.rounds):
        for label, run in steps.items():
            elapsed = timed(run)
            if i >= args.warmup:
                times[label].append(elapsed)
    report(times, args)


def report(times: dict, args) -> None:
    medians = {label: statistics.median(t) for label, t in times.items()}
    paired = {label: statistics.median(a / b for a, b in zip(t, times["adam"])) for label, t in times.items()}
    print(f"command: python {' '.join(sys.argv)}")
    print(f"torch {torch.__version__}, CPU {platform.processor() or platform.machine()}, threads "
          f"{torch.get_num_threads()}, batch {args.batch}, sequence {args.seq}, BERT-Tiny shape, "
          f"median of {args.rounds} steps after {args.warmup} warm-up")
    for label, median in medians.items():
        print(f"{label:32s} {1000 * median:8.1f} ms/step   ratio of medians {median / medians['adam']:.3f}"
              f"   median of per-round ratios {paired[label]:.3f}")


if __name__ == "__main__":
    main()
