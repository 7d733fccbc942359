"""The papers' published numbers and qualitative claims as data (``configs/published/<paper>.yaml``).

Each number is a cell of a paper's table: a row (a method, named as this project's registry
names it, plus the parameters that tell the paper's variants apart) and a column (a one-shot
operator, level and whether BNT followed, or ``dense``), in a setup (dataset, architecture,
epochs). Each keeps the token it was read from in the paper's text and where it stands there
(table, row label, cell), so that :mod:`.seed_check` can compare it with the text. Claims are
orderings between cells ("CrAM+-Multi keeps more accuracy than SGD at 80 %"), each with the
paper's sentence that makes it, that a reduced-scale run can still test.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Optional, Union

import jsonschema
import yaml

from .. import strict_yaml

Level = Union[float, str, None]
DENSE = "dense"  # the column of the unpruned model (its accuracy, no BNT)
SELECTIONS = ("cells", "claims")  # what a `reproduces` entry may restrict itself to


class PublishedError(ValueError):
    """Published data that cannot be used; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class Setup:
    name: str
    dataset: str
    arch: str  # the paper's architecture, as this project names it
    epochs: Optional[int] = None
    note: str = ""
    also_archs: tuple = ()
    width: Optional[int] = None  # the architecture's base width where the paper changes it (None: standard)  # other names whose runs meet the setup (a reduced-scale stand-in)

    def __post_init__(self):
        object.__setattr__(self, "also_archs", tuple(self.also_archs))

    @property
    def archs(self) -> tuple:
        return (self.arch, *self.also_archs)


@dataclass(frozen=True)
class Cell:
    """One (row, column) of a published table in one setup: what it matches in summary.csv."""
    paper: str
    table: str
    setup: Setup
    row: str
    column: str
    reproducible: bool
    method: Optional[str] = None
    params: dict = field(default_factory=dict, compare=False)
    given: tuple = ()
    compressor: str = DENSE
    level: Level = None
    bnt: Optional[bool] = None
    prunable: Optional[str] = None
    epochs: Optional[int] = None
    note: str = ""
    finetune: bool = False  # the pruned model was finetuned with its mask fixed (CrAM's Table 5)
    metric: str = "accuracy"

    @property
    def key(self) -> tuple:
        return (self.paper, self.table, self.setup.name, self.row, self.column)


@dataclass(frozen=True)
class Source:
    """Where a table's number stands in the paper's text: table position, row label, cell index."""
    table: int
    label: str
    index: int


@dataclass(frozen=True)
class Number:
    """A published value of a cell, with the token and context it was read from."""
    cell: Cell
    value: float
    std: Optional[float]
    token: str
    context: str
    note: str
    where: str  # file and key, for messages
    n: int = 1  # runs the paper's mean and std are over (its table's `n`)
    margin: float = 0.5  # pp: the equivalence margin of the verdict (its table's `margin`)
    source: Optional[Source] = None  # None: a number of the prose, its context a sentence


@dataclass(frozen=True)
class Claim:
    """An ordering between cells; every (left, right) pair must satisfy ``kind``."""
    paper: str
    table: str
    id: str
    text: str
    kind: str  # greater: l - r > threshold; not_below: l >= r - threshold; within: |l - r| <= threshold
    threshold: float
    pairs: tuple  # ((Cell, Cell), ...)
    where: str
    sentence: str = ""  # the paper's sentence that makes the claim

    @property
    def ref(self) -> str:
        return f"{self.paper}/{self.table}/{self.id}"


@dataclass
class Table:
    paper: str
    name: str
    title: str
    setup: Setup
    numbers: list = field(default_factory=list)
    claims: list = field(default_factory=list)
    selection: Optional[str] = None  # the paper shows the best entry of a sweep (report/selection.py)
    source: Optional[int] = None  # the table's position in the paper's text (None: from the prose)
    pending: Optional[str] = None  # what this project lacks to train its rows (e.g. language models)


@dataclass
class Paper:
    name: str
    title: str
    seed_prefix: str
    setups: dict
    tables: dict
    source: str
    excluded: dict = field(default_factory=dict)  # text table position -> why it is not stored


# ---------------------------------------------------------------- tokens

_CONCATENATED = re.compile(r"(\d+\.\d)(\d+\.\d+)")  # "95.70.1": CrAM prints one decimal
_NUMBER = re.compile(r"\d+(\.\d+)?")


def token_parts(token: str) -> tuple[str, Optional[str]]:
    """The value and std as printed: "95.70.1" -> ("95.7", "0.1"); "92.9 0." -> ("92.9", "0.");
    "1.3x" (a speed-up) -> ("1.3", None)."""
    text = token.strip().removesuffix("%").removesuffix("x").strip()
    parts = text.split()
    if len(parts) == 2 and _NUMBER.fullmatch(parts[0]) and re.fullmatch(r"\d+\.\d*", parts[1]):
        return parts[0], parts[1]
    if len(parts) == 1 and text.count(".") == 2 and _CONCATENATED.fullmatch(text):
        value, std = _CONCATENATED.fullmatch(text).groups()
        return value, std
    if len(parts) == 1 and _NUMBER.fullmatch(text):
        return text, None
    raise ValueError(f"cannot read a number from token {token!r}")


def parse_token(token: str) -> tuple[float, Optional[float]]:
    """Value and std of a number as the papers' text gives it, once the ± sign is lost.

    "93.10" and "77.3%" -> (93.1, None); "92.8 0.1" -> (92.8, 0.1); "95.70.1" -> (95.7, 0.1)
    (CrAM's Table 18: one decimal each); "92.9 0." -> (92.9, None): the std lost its digit.
    """
    value, std = token_parts(token)
    return float(value), float(std) if _complete(std) else None


def _complete(std: Optional[str]) -> bool:
    return std is not None and re.fullmatch(r"\d+\.\d+", std) is not None


def printed(token: str) -> str:
    """The number as the paper prints it, with its ± restored: "95.7 ± 0.1", "92.9 ± ?"."""
    value, std = token_parts(token)
    if std is None:
        return value
    return f"{value} ± {std if _complete(std) else '?'}"


def token_in_context(token: str, context: str) -> bool:
    """The token occurs in the context as a whole number (not inside a longer one)."""
    return re.search(rf"(?<![\d.]){re.escape(token)}(?![\d])", normalize_space(context)) is not None


def normalize_space(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------- loading

PUBLISHED_DIR = "configs/published"  # one <paper>.yaml per paper, relative to the project root


def default_dir() -> Path:
    """``configs/published`` of the working directory, else of the source checkout."""
    here = Path(PUBLISHED_DIR)
    return here if here.is_dir() else Path(__file__).resolve().parents[3] / PUBLISHED_DIR


def paper_files(refs: list[str], directory: Union[str, Path] = PUBLISHED_DIR) -> list[str]:
    """The papers' files that ``reproduces`` references (``paper/table...``) read, each once."""
    return sorted({f"{Path(directory).as_posix()}/{ref.split('/')[0]}.yaml" for ref in refs})


def _schema() -> dict:
    text = resources.files("compressible.schemas").joinpath("published.schema.yaml").read_text()
    return strict_yaml.load(text)


def load_paper(path: Union[str, Path]) -> Paper:
    """Read, schema-check and resolve one paper's file; every error names file and key."""
    path = Path(path)
    # libyaml's parser when present: the pure-Python one takes a second for cram.yaml
    try:
        raw = strict_yaml.load(path.read_text(encoding="utf-8"), fast=True)
    except yaml.YAMLError as err:
        raise PublishedError(strict_yaml.describe(err, str(path))) from None
    errors = sorted(jsonschema.Draft202012Validator(_schema()).iter_errors(raw), key=str)
    if errors:
        raise PublishedError("; ".join(f"{path}: key '{_key(e.absolute_path)}': {e.message}" for e in errors))
    if raw["paper"] != path.stem:
        raise PublishedError(f"{path}: key 'paper': {raw['paper']!r} must equal the file name {path.stem!r}")
    return _Resolver(path, raw).paper()


def _key(parts) -> str:
    return ".".join(str(p) for p in parts) or "<top level>"


@lru_cache(maxsize=8)
def _load_all_cached(directory: str) -> dict:
    papers = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        paper = load_paper(path)
        papers[paper.name] = paper
    if not papers:
        raise PublishedError(f"{directory}: no <paper>.yaml files")
    return papers


def load_all(directory: Union[str, Path, None] = None) -> dict:
    """Every paper under ``directory`` (default :func:`default_dir`), by name."""
    return _load_all_cached(str(Path(directory or default_dir()).resolve()))


class _Resolver:
    """Turns one file's nested rows/columns/numbers/claims into flat Cells, Numbers, Claims."""

    def __init__(self, path: Path, raw: dict):
        self.path, self.raw, self.name = path, raw, raw["paper"]
        self.setups = {k: Setup(k, **v) for k, v in raw["setups"].items()}
        self.sources: dict = {}  # text table position -> the table stored from it

    def fail(self, key: str, message: str) -> None:
        raise PublishedError(f"{self.path}: key '{key}': {message}")

    def paper(self) -> Paper:
        tables = {name: self.table(name, spec) for name, spec in self.raw["tables"].items()}
        for name, spec in self.raw["tables"].items():
            tables[name].claims = [self.claim(tables, name, i, c) for i, c in enumerate(spec.get("claims", []))]
        return Paper(self.name, self.raw["title"], self.raw["seed_prefix"], self.setups, tables, str(self.path),
                     self.excluded(tables))

    def excluded(self, tables: dict) -> dict:
        out = {}
        for i, entry in enumerate(self.raw.get("excluded", [])):
            stored = [t.name for t in tables.values() if t.source == entry["table"]]
            if entry["table"] in out or stored:
                self.fail(f"excluded.{i}", f"table {entry['table']} is {'stored as ' + stored[0] if stored else 'excluded twice'}")
            out[entry["table"]] = entry["reason"]
        return out

    def setup(self, name: str, key: str) -> Setup:
        if name not in self.setups:
            self.fail(key, f"unknown setup {name!r}; allowed: {', '.join(self.setups)}")
        return self.setups[name]

    def table(self, name: str, spec: dict) -> Table:
        key = f"tables.{name}"
        self._check_rows(spec, key)
        source = spec.get("source", {}).get("table")
        if source is not None:
            if source in self.sources:
                self.fail(f"{key}.source.table", f"table {source} of the text is already stored as {self.sources[source]}")
            self.sources[source] = name
        table = Table(self.name, name, spec["title"], self.setup(spec["setup"], f"{key}.setup"),
                      selection=spec.get("selection"), source=source, pending=spec.get("pending"))
        seen = set()
        for i, group in enumerate(spec.get("numbers", [])):
            for number in self.numbers(name, spec, group, f"{key}.numbers.{i}"):
                if number.cell.key in seen:
                    self.fail(number.where, f"a second number for cell {number.cell.key}")
                seen.add(number.cell.key)
                table.numbers.append(number)
        return table

    def _check_rows(self, spec: dict, key: str) -> None:
        for row, r in spec["rows"].items():
            if r.get("reproducible", True) != ("method" in r):
                self.fail(f"{key}.rows.{row}", "a reproducible row names its method; a cited one (reproducible: false) has none")

    def cell(self, table: str, spec: dict, row: str, column: str, setup: Optional[str], key: str) -> Cell:
        if row not in spec["rows"]:
            self.fail(key, f"unknown row {row!r}; allowed: {', '.join(spec['rows'])}")
        if column not in spec["columns"]:
            self.fail(key, f"unknown column {column!r}; allowed: {', '.join(spec['columns'])}")
        r, c = spec["rows"][row], spec["columns"][column]
        # the most specific wins: a number group's (or claim side's) setup, then the row, the column
        merged = {part: next((v for v in ((setup if part == "setup" else None), r.get(part), c.get(part))
                              if v is not None), None)
                  for part in ("setup", "bnt", "prunable", "compressor", "level", "finetune")}
        operator = merged["compressor"]
        if operator is None:
            self.fail(key, f"neither row {row!r} nor column {column!r} names a compressor")
        if operator == DENSE:
            merged["bnt"] = None  # a row's bnt (SFW evaluates without) means nothing unpruned
            if merged["level"] is not None:
                self.fail(key, f"row {row!r}, column {column!r}: the dense model has no level")
        elif merged["level"] is None or merged["bnt"] is None:
            self.fail(key, f"row {row!r}, column {column!r}: a compressed cell needs a level and bnt (from its row or column)")
        return Cell(self.name, table, self.setup(merged["setup"] or spec["setup"], key), row, column,
                    r.get("reproducible", True), r.get("method"), copy.deepcopy(r.get("params", {})),
                    tuple(r.get("given", ())), operator, merged["level"], merged["bnt"],
                    merged["prunable"], r.get("epochs"), r.get("note", ""), bool(merged["finetune"]),
                    c.get("metric", spec.get("metric", "accuracy")))

    def numbers(self, table: str, spec: dict, group: dict, key: str) -> list:
        out = []
        if normalize_space(group["context"]) != group["context"]:
            self.fail(f"{key}.context", "write the context with single spaces (the check normalizes the text so)")
        for column, n in group["cells"].items():
            where = f"{key}.cells.{column}"
            cell = self.cell(table, spec, group["row"], column, group.get("setup"), where)
            self._check_token(n, group["context"], where)
            note = "; ".join(x for x in (group.get("note", ""), n.get("note", "")) if x)
            if n.get("std") is not None and spec.get("n", 1) < 2:
                self.fail(where, "a number with a std needs its table's `n` (the runs the paper's std is over, at least 2)")
            out.append(Number(cell, float(n["value"]), n.get("std"), n["token"], group["context"], note,
                              f"{self.path}: {where}", spec.get("n", 1), float(spec.get("margin", 0.5)),
                              self.source(spec, group, column, key)))
        return out

    def source(self, spec: dict, group: dict, column: str, key: str) -> Optional[Source]:
        """Where a table's number stands in the text; None for a number of the prose."""
        if "source" not in spec:
            if "label" in group or "columns" in group:
                self.fail(key, "a label (or columns) locates a number in a table of the text: give the table a source")
            return None
        if "label" not in group:  # a sentence of the prose beside the table (CrAM's Table 17, before BNT)
            return None
        index = group.get("columns", {}).get(column, spec["source"]["columns"].get(column))
        if index is None:
            self.fail(f"{key}.cells.{column}", f"column {column!r} has no cell index in the table's source.columns")
        return Source(spec["source"]["table"], group["label"], index)

    def _check_token(self, n: dict, context: str, key: str) -> None:
        try:
            value, std = parse_token(n["token"])
        except ValueError as err:
            self.fail(key, str(err))
        if (value, std) != (n["value"], n.get("std")):
            self.fail(key, f"token {n['token']!r} reads as value {value}, std {std}; "
                           f"the entry gives value {n['value']}, std {n.get('std')}")
        if not token_in_context(n["token"], context):
            self.fail(key, f"token {n['token']!r} does not occur in the context {context!r}")

    def side(self, table: str, side: dict, key: str) -> list:
        name = side.get("table", table)
        if name not in self.raw["tables"]:
            self.fail(f"{key}.table", f"unknown table {name!r}; allowed: {', '.join(self.raw['tables'])}")
        spec = self.raw["tables"][name]
        # rows outer, columns inner: [[row0 col0, row0 col1, ...], [row1 col0, ...], ...]
        return [[self.cell(name, spec, row, col, side.get("setup"), key) for col in side["columns"]]
                for row in side["rows"]]

    def claim(self, tables: dict, table: str, i: int, spec: dict) -> Claim:
        key = f"tables.{table}.claims.{i}"
        left = self.side(table, spec["left"], f"{key}.left")
        right = self.side(table, spec["right"], f"{key}.right")
        pairs = _pair_up(left, right, key, self.fail)
        threshold = spec.get("margin", 0.0) if spec["kind"] == "greater" else spec.get("tolerance", 0.0)
        if spec["kind"] != "greater" and "margin" in spec or spec["kind"] == "greater" and "tolerance" in spec:
            self.fail(key, "greater takes a margin; not_below and within take a tolerance")
        published = {n.cell.key for t in tables.values() for n in t.numbers}
        for a, b in pairs:
            for c in (a, b):
                if not c.reproducible and c.key not in published:
                    self.fail(key, f"cited row {c.row!r} enters the claim but has no published number in column {c.column!r}")
        if normalize_space(spec["sentence"]) != spec["sentence"]:
            self.fail(f"{key}.sentence", "write the sentence with single spaces (the check normalizes the text so)")
        return Claim(self.name, table, spec["id"], spec["text"], spec["kind"], float(threshold), tuple(pairs),
                     f"{self.path}: {key}", spec["sentence"])


def _pair_up(left: list, right: list, key: str, fail) -> list:
    """Rows pair by position, as do columns; a side with one row (or column) is repeated."""
    rows = _zip_or_repeat(len(left), len(right), "rows", key, fail)
    pairs = []
    for i, j in rows:
        cols = _zip_or_repeat(len(left[i]), len(right[j]), "columns", key, fail)
        pairs.extend((left[i][a], right[j][b]) for a, b in cols)
    return pairs


def _zip_or_repeat(n: int, m: int, what: str, key: str, fail) -> list:
    if n == m:
        return [(i, i) for i in range(n)]
    if n == 1 or m == 1:
        return [(0 if n == 1 else i, 0 if m == 1 else i) for i in range(max(n, m))]
    fail(key, f"left and right list {n} and {m} {what}: give the same number, or one")
    return []


# ---------------------------------------------------------------- queries

def published_value(paper: str, table: str, setup: str, row: str, column: str,
                    directory: Union[str, Path, None] = None) -> Optional[Number]:
    """The published number of one (row, column) cell of a paper's table in a setup, if any."""
    papers = load_all(directory)
    tab = papers[paper].tables[table] if paper in papers and table in papers[paper].tables else None
    if tab is None:
        raise KeyError(f"no published table {paper}/{table}; known: {', '.join(table_refs(directory))}")
    return next((n for n in tab.numbers if n.cell.key == (paper, table, setup, row, column)), None)


def table_refs(directory: Union[str, Path, None] = None) -> list[str]:
    return [f"{p}/{t}" for p, paper in load_all(directory).items() for t in paper.tables]


def resolve_references(refs: list[str], directory: Union[str, Path, None] = None) -> list[tuple]:
    """``paper/table`` (its numbers and claims) or ``paper/table/cells|claims`` ->
    (Paper, Table, what) with what a set of SELECTIONS; unknown names fail with the allowed ones."""
    if not refs:
        return []
    papers, out = load_all(directory), []
    for i, ref in enumerate(refs):
        parts = ref.split("/")
        paper = papers.get(parts[0])
        table = paper.tables.get(parts[1]) if paper and len(parts) in (2, 3) else None
        if table is None or (len(parts) == 3 and parts[2] not in SELECTIONS):
            raise PublishedError(
                f"config key 'reproduces.{i}': unknown {ref!r}; allowed: paper/table, optionally "
                f"followed by /cells or /claims, with paper/table one of {', '.join(table_refs(directory))}")
        out.append((paper, table, {parts[2]} if len(parts) == 3 else set(SELECTIONS)))
    return out


def seed_text(paper: Paper, seeds_dir: Union[str, Path]) -> str:
    """The paper's text in a seed directory (the file whose name starts with seed_prefix)."""
    matches = sorted(Path(seeds_dir).glob(f"{paper.seed_prefix}*"))
    if len(matches) != 1:
        raise FileNotFoundError(f"{seeds_dir}: expected one file {paper.seed_prefix}*, found {len(matches)}")
    return matches[0].read_text(encoding="utf-8")


def iter_numbers(papers: dict):
    for paper in papers.values():
        for table in paper.tables.values():
            yield from table.numbers


def iter_claims(papers: dict):
    for paper in papers.values():
        for table in paper.tables.values():
            yield from table.claims


def as_dict(number: Number) -> dict[str, Any]:
    """The flat record of a number (paper, table, row, column, value, std, setup, ...)."""
    c = number.cell
    return {"paper": c.paper, "table": c.table, "setup": c.setup.name, "dataset": c.setup.dataset,
            "arch": c.setup.arch, "epochs": c.setup.epochs if c.epochs is None else c.epochs, "row": c.row,
            "column": c.column, "method": c.method, "params": c.params, "compressor": c.compressor,
            "level": c.level, "bnt": c.bnt, "prunable": c.prunable, "finetune": c.finetune,
            "metric": c.metric, "value": number.value, "std": number.std, "token": number.token,
            "reproducible": c.reproducible}
