"""The package's shape, read from the sources: no import circle, training/ imported only by itself
and the CLI, optim/ knowing no run or dataset; and every registered method swept."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch import nn

from compressible.registry import METHODS

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "compressible"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """Project modules that ``path`` imports anywhere in its text, inside functions too (a lazy
    import still closes a circle when it runs); a submodule import also runs its package's
    ``__init__``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
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


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports, built from the sources. A package importing its
    own submodules (how registration works) is left out: it is not a circle."""
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(f) for f in files}
    graph = {module_name(f): imported_modules(f, modules) for f in files}
    return {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None (depth-first search, modules in sorted order)."""
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                return path[path.index(dep):] + [dep]
            if dep not in state and (circle := visit(dep, path + [dep])):
                return circle
        state[module] = "done"
        return None

    return next((c for m in sorted(graph) if m not in state and (c := visit(m, [m]))), None)


def test_the_circle_finder_finds_a_circle():
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_relative_and_function_level_imports_are_edges():
    graph = import_graph()
    assert {"compressible.tasks", "compressible.optim.schedules"} <= graph["compressible.training.loop"]
    assert "compressible.compress" in graph["compressible.optim.methods_cram"]  # via compress.base
    assert "compressible.report.savefig" in graph["compressible.report.selection"]  # inside a function
    assert "compressible.training.loop" in graph["compressible.cli"]  # inside a function, two levels down


def test_no_import_circle():
    circle = find_circle(import_graph())
    assert circle is None, "import circle: " + " -> ".join(circle or [])


# Entry points that may start a run: the CLI (`python -m compressible train`).
TRAINING_ENTRY_POINTS = {"compressible.cli"}


def test_the_training_modules_are_imported_only_by_training_and_the_cli():
    graph = import_graph()
    outside = {f"{m} imports {d}" for m, deps in graph.items() for d in deps
               if d.startswith("compressible.training.") and not m.startswith("compressible.training")
               and m not in TRAINING_ENTRY_POINTS}
    assert not outside, sorted(outside)


def test_the_optimizers_know_no_run_and_no_dataset():
    """optim/ gets models, parameters and batches; what a run is and where data comes from
    stay with training/ (SFW-Init receives its batches)."""
    graph = import_graph()
    known = {f"{m} imports {d}" for m, deps in graph.items() if m.startswith("compressible.optim")
             for d in deps if d.startswith(("compressible.data", "compressible.runs", "compressible.training"))}
    assert not known, sorted(known)


ALL_METHODS = {"sgd", "sam", "cram", "cram_plus", "cram_plus_multi", "cram_plus_nm", "cram_plus_quant",
               "c_sam", "topk", "topk_plus", "sfw", "nuclear_prox", "adam", "masked"}


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
    assert set(METHODS.fact(name, "params")) >= {"lr"}


PRUNABLE_FREE = sorted(n for n in ALL_METHODS if not getattr(METHODS.get(n), "uses_prunable", True))


def test_the_methods_that_read_no_prunable_set():
    assert PRUNABLE_FREE == ["adam", "nuclear_prox", "sfw", "sgd"]


@pytest.mark.parametrize("name", PRUNABLE_FREE)
def test_methods_outside_the_run_hash_ignore_the_prunable_set(name):
    """A method whose builder says it reads no prunable set (so the set is not in its run hash)
    must train the same weights whatever the set is."""
    a = train_steps(name, ("0.weight", "3.weight")).state_dict()
    b = train_steps(name, ("3.weight",)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
