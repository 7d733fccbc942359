"""The package's shape: no import circle between its modules, every registered method swept."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch import nn

from compressible.config import method_params
from compressible.registry import METHODS

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "compressible"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """Project modules imported when ``path`` is imported (module level; a submodule import
    also runs its package's ``__init__``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & modules
    return found - {name}


def test_no_import_circle():
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(f) for f in files}
    graph = {module_name(f): imported_modules(f, modules) for f in files}
    # a package importing its own submodules is how registration works, not a circle
    graph = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    assert {"compressible.evaluate", "compressible.optim.schedules"} <= graph["compressible.training.loop"]
    assert "compressible.compress" in graph["compressible.optim.methods_cram"]  # via compress.base
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                pytest.fail("import circle: " + " -> ".join(path[path.index(dep):] + [dep]))
            if dep not in state:
                visit(dep, path + [dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


ALL_METHODS = {"sgd", "sam", "cram", "cram_plus", "cram_plus_multi", "cram_plus_nm", "cram_plus_quant",
               "c_sam", "topk", "topk_plus", "sfw", "nuclear_prox"}


def tiny_problem(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.randn(32, 8, generator=gen), torch.randint(0, 3, (32,), generator=gen)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    return model, x, y


def train_steps(name: str, prunable_names: tuple[str, ...], steps: int = 3) -> nn.Module:
    from compressible.training.loop import make_closure

    model, x, y = tiny_problem()
    params = dict(model.named_parameters())
    optimizer = METHODS.get(name)(model, [(n, params[n]) for n in prunable_names], seed=0)
    for _ in range(steps):
        optimizer.step(make_closure(model, x, y, optimizer))
    return model


def test_every_registered_method_is_swept():
    assert set(METHODS.names()) == ALL_METHODS


@pytest.mark.parametrize("name", sorted(ALL_METHODS))
def test_every_method_trains_with_its_own_defaults(name):
    before = tiny_problem()[0].state_dict()
    after = train_steps(name, ("0.weight", "3.weight")).state_dict()
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())
    assert set(method_params(METHODS.get(name))) >= {"lr"}


PRUNABLE_FREE = sorted(n for n in ALL_METHODS if not getattr(METHODS.get(n), "uses_prunable", True))


def test_the_methods_that_read_no_prunable_set():
    assert PRUNABLE_FREE == ["nuclear_prox", "sfw", "sgd"]


@pytest.mark.parametrize("name", PRUNABLE_FREE)
def test_methods_outside_the_run_hash_ignore_the_prunable_set(name):
    """A method whose builder says it reads no prunable set (so the set is not in its run hash)
    must train the same weights whatever the set is."""
    a = train_steps(name, ("0.weight", "3.weight")).state_dict()
    b = train_steps(name, ("3.weight",)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
