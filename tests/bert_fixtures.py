"""A tiny BERT folder and synthetic SQuAD-format files, written with the real libraries' formats:
``BertConfig`` + ``save_pretrained`` (config.json, model.safetensors) and a WordPiece vocabulary
covering every word of the synthetic texts (vocab.txt, read by ``BertTokenizerFast``)."""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
PLACES = ["paris", "rome", "oslo", "lima", "cairo", "quito", "delhi", "tokyo"]
THINGS = ["apples", "books", "chairs", "lamps", "pens", "boats", "clocks", "maps"]
FILLER = ["the", "a", "cat", "sat", "on", "mat", "and", "then", "it", "rained", "all", "day", "long"]
WORDS = ["who", "where", "what", "did", "does", "live", "lives", "in", "buy", "bought", "sell", "sells",
         "likes", "like", ".", "?", ",", "born", "was", "is"] + NAMES + PLACES + THINGS + FILLER


def write_bert_folder(folder: Path, layers: int = 2, hidden: int = 32, heads: int = 2,
                      intermediate: int = 64, max_positions: int = 128) -> Path:
    """A BERT whose vocabulary covers the synthetic texts, saved as Transformers saves one."""
    import torch
    from transformers import BertConfig, BertForQuestionAnswering

    folder.mkdir(parents=True, exist_ok=True)
    vocab = SPECIAL + sorted(set(WORDS))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=intermediate,
                        max_position_embeddings=max_positions)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        BertForQuestionAnswering(config).save_pretrained(folder)
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}) + "\n")
    return folder


def _paragraph(rng: random.Random, index: int) -> dict:
    """One context about a person, a place and a thing, and three questions on it."""
    name, place, thing = rng.choice(NAMES), rng.choice(PLACES), rng.choice(THINGS)
    filler = " ".join(rng.choice(FILLER) for _ in range(rng.randint(4, 30)))
    context = f"{filler} . {name.title()} lives in {place} and sells {thing} . {filler} ."
    qas = []
    for k, (question, answer) in enumerate([(f"Where does {name} live?", place),
                                            (f"What does {name} sell?", thing),
                                            (f"Who lives in {place}?", name.title())]):
        start = context.index(f"{name.title()} lives")
        start = context.index(answer, start)
        qas.append({"id": f"q{index}-{k}", "question": question,
                    "answers": [{"text": answer, "answer_start": start}] * (2 if k == 0 else 1)})
    return {"context": context, "qas": qas}


def squad_json(paragraphs: int, seed: int) -> dict:
    rng = random.Random(seed)
    return {"version": "1.1", "data": [{"title": "synthetic",
                                        "paragraphs": [_paragraph(rng, i) for i in range(paragraphs)]}]}


def write_squad(root: Path, train_paragraphs: int = 12, dev_paragraphs: int = 4) -> dict:
    """train-v1.1.json and dev-v1.1.json under ``root``; returns their sha256 (dataset.sha256)."""
    root.mkdir(parents=True, exist_ok=True)
    digests = {}
    for name, count, seed in (("train-v1.1.json", train_paragraphs, 1), ("dev-v1.1.json", dev_paragraphs, 2)):
        path = root / name
        path.write_text(json.dumps(squad_json(count, seed)))
        digests[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests
