"""Count the calls that would block the host on a GPU, on any device (the CPU included).

A CUDA step is launch-bound when the model is small (a CIFAR ResNet-20): the host queues
kernels ahead of the GPU, and every read of a device value back to Python (``item``,
``float(t)``, ``bool(t)``, ``tolist``, ...) or every operation whose output size depends on
device data (``nonzero``, boolean-mask indexing) waits until the GPU has caught up, throwing
that overlap away. The calls are the same whatever the device, so counting them on the CPU
tells what a GPU would meet. Linear-algebra decompositions (``eigh``, ``svd``, ...) check a
status flag on the host inside the operator: they are counted apart (``linalg``), as this
project's spectral constraints need them. A read of a tensor that lives on the host on every
device (the output of a CPU generator) blocks nothing: it goes through :func:`host_read` and is
counted apart (``host``).
"""
from __future__ import annotations

import threading
from collections import Counter

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

Tensor = torch.Tensor
# a Python value read from a tensor: the host waits for the device
READS = {Tensor.item: "item", Tensor.tolist: "tolist", Tensor.numpy: "numpy", Tensor.cpu: "cpu",
         Tensor.__float__: "float", Tensor.__int__: "int", Tensor.__bool__: "bool",
         Tensor.__index__: "index", Tensor.__format__: "format", Tensor.__array__: "numpy",
         Tensor.is_nonzero: "bool", torch.equal: "equal", Tensor.equal: "equal",
         torch.allclose: "allclose", Tensor.allclose: "allclose"}
# an output whose size depends on device data: the host waits to allocate it
SIZED = {torch.nonzero: "nonzero", Tensor.nonzero: "nonzero", torch.argwhere: "nonzero",
         torch.masked_select: "masked_select", Tensor.masked_select: "masked_select",
         torch.unique: "unique", Tensor.unique: "unique"}
LINALG = {torch.linalg.eigh: "eigh", torch.linalg.svd: "svd", torch.linalg.svdvals: "svdvals",
          torch.linalg.eigvalsh: "eigvalsh", torch.linalg.matrix_norm: "matrix_norm"}
_HOST_ONLY = threading.local()  # set while host_read reads a CPU tensor
INDEXING = (Tensor.__getitem__, Tensor.__setitem__, Tensor.index_put_, Tensor.index_put, torch.index_put)


def _boolean_index(args) -> bool:
    """True when an indexing call's index holds a boolean tensor (boolean-mask indexing)."""
    index = args[1] if len(args) > 1 else None
    parts = index if isinstance(index, (tuple, list)) else (index,)
    return any(isinstance(i, Tensor) and i.dtype == torch.bool for i in parts)


def host_read(tensor: torch.Tensor) -> list:
    """``tensor.tolist()`` for a tensor on the CPU whatever the training device (the draws of a
    CPU ``torch.Generator``): no device to wait for, so :class:`HostSyncs` counts it apart."""
    if tensor.device.type != "cpu":
        raise ValueError(f"host_read reads CPU tensors only, got one on {tensor.device}")
    _HOST_ONLY.active = True
    try:
        return tensor.tolist()
    finally:
        _HOST_ONLY.active = False


class HostSyncs(TorchFunctionMode):
    """``with HostSyncs() as syncs: ...`` then ``syncs.total`` and ``syncs.counts`` (by call)."""

    def __init__(self):
        super().__init__()
        self.counts: Counter = Counter()
        self.linalg: Counter = Counter()
        self.host: Counter = Counter()  # reads of host-only tensors (host_read)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = READS.get(func) or SIZED.get(func)
        if name is None and func in INDEXING and _boolean_index(args):
            name = "boolean index"
        if name is None and func is torch.repeat_interleave and "output_size" not in kwargs:
            name = "repeat_interleave" if isinstance(args[1] if len(args) > 1 else kwargs.get("repeats"), Tensor) else None
        if name is not None and getattr(_HOST_ONLY, "active", False):
            self.host[name] += 1
        elif name is not None:
            self.counts[name] += 1
        elif func in LINALG:
            self.linalg[LINALG[func]] += 1
        return func(*args, **kwargs)


class AtenOps(TorchDispatchMode):
    """Counts the ATen operators that run (about one kernel launch each on a GPU)."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.total += 1
        return func(*args, **(kwargs or {}))
