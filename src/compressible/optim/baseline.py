"""The dense baselines and the base optimizers SAM and CrAM step with.

``sgd``: SGD with momentum and weight decay (the image papers' "Baseline" rows). ``adam``: Adam
as Transformers fine-tunes BERT (CrAM App. D: the SQuAD baseline; ``torch.optim.AdamW`` with
weight decay 0 is plain Adam). SAM and CrAM take ``base: sgd | adam`` and step with the base's
update once their gradient is in ``p.grad`` (CrAM App. D: "the CrAM step is optimizer-agnostic").
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..registry import METHODS
from .errors import ParamError

SGD = {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}
# Transformers' fine-tuning defaults (its TrainingArguments: lr 5e-5, betas, eps, no decay)
ADAM = {"lr": 5e-5, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}


@dataclass(frozen=True)
class Base:
    """A base optimizer: its class, the keys a method may set (with defaults), fixed options."""

    optimizer: type[torch.optim.Optimizer]
    defaults: dict
    options: dict = field(default_factory=dict)


# Adam fused: the same update, with its step count kept on the device, so no step reads a
# device value back to the host (the for-each kernels read each tensor's count per step).
BASES = {"sgd": Base(torch.optim.SGD, SGD), "adam": Base(torch.optim.AdamW, ADAM, {"fused": True})}
BASE_KEYS = {key: default for base in BASES.values() for key, default in base.defaults.items() if key != "lr"}


def base_optimizer(name: str, given: dict) -> tuple[type[torch.optim.Optimizer], dict]:
    """The base's class and keyword arguments from a method's ``given`` parameters; a key of
    another base (``momentum`` with Adam, ``betas`` with SGD) is refused, naming it."""
    if name not in BASES:
        raise ParamError("base", f"base must be one of {sorted(BASES)}, got {name!r}")
    base = BASES[name]
    foreign = sorted(k for k in given if k in BASE_KEYS and k not in base.defaults)
    if foreign:
        raise ParamError(foreign[0], f"{foreign[0]!r} is not a parameter of base {name!r}; "
                                     f"its optimizer keys are {sorted(base.defaults)}")
    kwargs = {key: given.get(key, default) for key, default in base.defaults.items()}
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])  # YAML gives a list
    return base.optimizer, {**kwargs, **base.options}


@METHODS.register("sgd")
def build_sgd(model: nn.Module, prunable: list, *, seed: int, lr: float = 0.1,
              momentum: float = 0.9, weight_decay: float = 5e-4, nesterov: bool = False) -> torch.optim.Optimizer:
    """Plain SGD; ``step(closure)`` runs the trainer's single forward-backward pass."""
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                           weight_decay=weight_decay, nesterov=nesterov)


@METHODS.register("adam")
def build_adam(model: nn.Module, prunable: list, *, seed: int, lr: float = ADAM["lr"],
               betas: tuple = ADAM["betas"], eps: float = ADAM["eps"],
               weight_decay: float = ADAM["weight_decay"]) -> torch.optim.Optimizer:
    """Adam (AdamW with decoupled decay, 0 by default); frozen parameters (BERT's embeddings,
    App. D) have no gradient and stay as they are."""
    optimizer, kwargs = base_optimizer("adam", {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})
    return optimizer([p for p in model.parameters() if p.requires_grad], **kwargs)


build_sgd.uses_prunable = False  # its training reads no prunable set (it enters no run hash)
build_adam.uses_prunable = False
