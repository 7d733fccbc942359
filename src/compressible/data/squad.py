"""SQuAD v1.1 (Rajpurkar et al., 2016) from its official JSON files, tokenized for BERT.

``dataset.root`` holds ``train-v1.1.json`` and ``dev-v1.1.json``, each sha256-checked against the
official release before it is read. Every question becomes one or more features of
``max_seq_length`` tokens (``[CLS] question [SEP] context window [SEP]``); a context longer than
the window is cut into windows that overlap, each starting ``doc_stride`` tokens after the last
(CrAM App. D: 384 and 128, as Devlin et al.). The tokenizer is the fast tokenizer of the model
folder ``dataset.tokenizer`` (the folder BERT is loaded from): the prepared ids are that vocabulary's.

A training feature's answer is the first token and the last token of the answer span; a window
that does not hold the whole span points both at [CLS] (position 0), as in BERT's SQuAD recipe.
Dev features keep, besides, each token's character span in the context (-1 outside it) and the
index of their question, so that predicted token spans become answer texts (``tasks/``), and the
dev questions keep every reference answer for the official EM/F1.

``transformers`` is imported only where text is tokenized: the workflow parses without it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..registry import DATASETS
from .checksums import IntegrityError, missing_root
from .files import DOC_STRIDE, MAX_SEQ_LENGTH, TOKENIZER_FILES
from .files import SQUAD_FILES as FILES
from .files import squad_files as files
from .files import squad_missing as missing

# sha256 of the official files as distributed at rajpurkar.github.io/SQuAD-explorer
OFFICIAL_SHA256 = {
    "train-v1.1.json": "3527663986b8295af4f7fcdff1ba1ff3f72d07d61a20f487cb238a6ef92fd955",
    "dev-v1.1.json": "95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9",
}
KIND = "squad_features"  # marks a prepared file as tokenized SQuAD (data.load_splits reads it)
TOKEN_KEYS = ("input_ids", "attention_mask", "token_type_ids")


class SquadFormatError(ValueError):
    """A SQuAD file that does not have the official format, or an answer not in its context."""


@dataclass
class QASplits:
    """Tokenized SQuAD: ``train`` and ``dev`` map names to tensors with one row per feature.

    train: input_ids, attention_mask, token_type_ids, start_positions, end_positions.
    dev: the same, plus ``offsets`` (feature, token, 2: character span in the context, -1
    outside it) and ``example`` (the index of the feature's question in ``examples``).
    ``examples``: per dev question its id, context and reference answers (texts, starts).
    """

    train: dict
    dev: dict
    examples: list
    max_seq_length: int
    info: dict = field(default_factory=dict)  # tokenizer and source files (provenance)
    num_classes = None  # not image splits: the model builder takes its sizes from its folder
    in_channels = None

    @property
    def train_labels(self) -> torch.Tensor:
        """One entry per training feature (the trainer counts its steps by it)."""
        return self.train["start_positions"]

    @property
    def test_labels(self) -> torch.Tensor:
        return self.dev["start_positions"]

    @property
    def input_shape(self) -> tuple[int]:
        return (self.max_seq_length,)

    def subset(self, train: int | None, test: int | None) -> "QASplits":
        """The features of the first ``train`` / ``test`` questions (None keeps all)."""
        out = self
        if train is not None:
            out = replace(out, train=_rows(out.train, out.train["example"] < train))
        if test is not None:
            out = replace(out, dev=_rows(out.dev, out.dev["example"] < test), examples=out.examples[:test])
        return out

    def to(self, device: torch.device) -> "QASplits":
        move = {k: v.to(device) for k, v in self.train.items()}
        return replace(self, train=move, dev={k: v.to(device) for k, v in self.dev.items()})

    def save(self, path: str | Path) -> str:
        torch.save({"kind": KIND, "train": self.train, "dev": self.dev, "examples": self.examples,
                    "max_seq_length": self.max_seq_length, "info": self.info}, path)
        return _file_sha256(Path(path))


def _rows(split: dict, keep: torch.Tensor) -> dict:
    return {k: v[keep] for k, v in split.items()}


def is_prepared(payload: object) -> bool:
    return isinstance(payload, dict) and payload.get("kind") == KIND


def from_payload(payload: dict) -> QASplits:
    return QASplits(payload["train"], payload["dev"], payload["examples"], payload["max_seq_length"],
                    payload["info"])


# ---------------------------------------------------------------- reading the official files

def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def expected_sha256(cfg: dict) -> dict:
    """The sha256 each file must have: the official ones, or ``dataset.sha256`` (a mapping of
    file name to sha256 for other SQuAD-format files, e.g. the tests' synthetic ones)."""
    return dict(OFFICIAL_SHA256, **cfg.get("sha256", {}))


def verify_sha256(path: Path, expected: str) -> None:
    found = _file_sha256(path)
    if found != expected:
        raise IntegrityError(f"{path}: sha256 {found} is not the expected {expected}; the file is damaged "
                             "or not the official release (replace it, or give its sha256 under dataset.sha256)")


def read_squad(path: Path) -> list[dict]:
    """The questions of one SQuAD-format file, each with id, question, context and answers;
    an answer whose text is not the context at its ``answer_start`` is refused by question id."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SquadFormatError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise SquadFormatError(f"{path}: expected a mapping with a list under 'data' (the SQuAD format)")
    examples = []
    try:
        for article in data["data"]:
            for paragraph in article["paragraphs"]:
                context = paragraph["context"]
                for qa in paragraph["qas"]:
                    examples.append(_example(path, context, qa))
    except (KeyError, TypeError) as err:
        raise SquadFormatError(f"{path}: missing or malformed field {err} (SQuAD format: data[].paragraphs[]"
                               ".{context, qas[].{id, question, answers[].{text, answer_start}}})") from None
    return examples


def _example(path: Path, context: str, qa: dict) -> dict:
    texts, starts = [], []
    for answer in qa["answers"]:
        text, start = answer["text"], answer["answer_start"]
        if not isinstance(start, int) or context[start:start + len(text)] != text:
            raise SquadFormatError(f"{path}: question {qa['id']}: answer {text!r} is not the context at "
                                   f"answer_start {start} (found {context[start:start + len(text)]!r})")
        texts.append(text)
        starts.append(start)
    if not texts:
        raise SquadFormatError(f"{path}: question {qa['id']} has no answer (SQuAD v1.1 answers every question)")
    return {"id": str(qa["id"]), "question": qa["question"], "context": context,
            "answers": {"text": texts, "answer_start": starts}}


# ---------------------------------------------------------------- tokenization

def load_tokenizer(folder: str | Path):
    """The model folder's own fast WordPiece tokenizer; nothing is downloaded."""
    from transformers import BertTokenizerFast

    return BertTokenizerFast.from_pretrained(str(folder), local_files_only=True)


def tokenize(examples: list[dict], tokenizer, max_seq_length: int, doc_stride: int) -> dict:
    """Features of ``examples``: token tensors, answer positions, character offsets, questions."""
    encoded = tokenizer([e["question"].lstrip() for e in examples], [e["context"] for e in examples],
                        truncation="only_second", max_length=max_seq_length, stride=doc_stride,
                        return_overflowing_tokens=True, return_offsets_mapping=True, padding="max_length")
    starts, ends, offsets = [], [], []
    for i, sample in enumerate(encoded["overflow_to_sample_mapping"]):
        in_context = [s == 1 for s in encoded.sequence_ids(i)]
        spans = [tuple(o) if c else (-1, -1) for o, c in zip(encoded["offset_mapping"][i], in_context)]
        answer = examples[sample]["answers"]
        first = answer["answer_start"][0]
        start, end = answer_positions(spans, first, first + len(answer["text"][0]))
        starts.append(start)
        ends.append(end)
        offsets.append(spans)
    small = torch.int8
    return {"input_ids": torch.tensor(encoded["input_ids"], dtype=torch.int32),
            "attention_mask": torch.tensor(encoded["attention_mask"], dtype=small),
            "token_type_ids": torch.tensor(encoded["token_type_ids"], dtype=small),
            "start_positions": torch.tensor(starts), "end_positions": torch.tensor(ends),
            "example": torch.tensor(encoded["overflow_to_sample_mapping"]),
            "offsets": torch.tensor(offsets, dtype=torch.int32)}


def answer_positions(spans: list[tuple[int, int]], char_start: int, char_end: int) -> tuple[int, int]:
    """Token positions of the first and last token of the characters [char_start, char_end) in
    one window (``spans``: each token's characters, (-1, -1) outside the context); (0, 0), the
    [CLS] token, when the window does not hold the whole answer."""
    inside = [i for i, (a, b) in enumerate(spans) if a >= 0]
    if not inside or spans[inside[0]][0] > char_start or spans[inside[-1]][1] < char_end:
        return 0, 0
    start = next(i for i in inside if spans[i][1] > char_start)
    end = next(i for i in reversed(inside) if spans[i][0] < char_end)
    return start, end


# ---------------------------------------------------------------- the registered dataset

@DATASETS.register("squad")
def squad(cfg: dict) -> QASplits:
    """Read, check and tokenize both official files (see the module docstring)."""
    problem = missing(cfg)
    if problem:
        raise FileNotFoundError(problem)
    expected, sources = expected_sha256(cfg), {}
    for path in files(cfg).values():
        verify_sha256(path, expected[path.name])
        sources[path.name] = _file_sha256(path)
    train, dev = (read_squad(p) for p in files(cfg).values())
    tokenizer = load_tokenizer(cfg["tokenizer"])
    length, stride = cfg.get("max_seq_length", MAX_SEQ_LENGTH), cfg.get("doc_stride", DOC_STRIDE)
    train_features = tokenize(train, tokenizer, length, stride)
    del train_features["offsets"]  # only dev answers are read back as text
    dev_features = tokenize(dev, tokenizer, length, stride)
    examples = [{"id": e["id"], "context": e["context"], "answers": e["answers"]} for e in dev]
    info = {"sources": sources, "vocab_sha256": _file_sha256(Path(cfg["tokenizer"]) / "vocab.txt"),
            "max_seq_length": length, "doc_stride": stride, "questions": [len(train), len(dev)]}
    return QASplits(train_features, dev_features, examples, length, info)


squad.task = "question_answering"
squad.train_size = 87_599  # training questions of the official file (train_subset counts questions)
squad.test_size = 10_570  # dev questions
squad.image_shape, squad.num_classes = (MAX_SEQ_LENGTH,), None  # the planner's input: one window
