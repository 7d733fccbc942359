"""Extractive question answering (SQuAD v1.1, CrAM Sec. 4.2): a span of the context per question.

Loss: the mean of the cross-entropies of the answer's start token and end token over the
window's positions (BERT's SQuAD loss), each with ``training.label_smoothing`` (CrAM App. D).
Evaluation: every dev feature's start and end logits; per question, the best span over its
windows among the ``N_BEST`` highest start and end logits of each window (both in the context,
end not before start, at most ``MAX_ANSWER_LENGTH`` tokens), scored by the sum of the two logits;
its text is cut from the context by the tokens' character offsets. The answers are scored with
the official SQuAD v1.1 exact match and F1 (Rajpurkar et al., 2016; the evaluation script of
v1.1, which Transformers' run_qa and the `evaluate` library use): the texts normalized (lower
case, no punctuation, no articles, single spaces); F1 over word overlap, 0 without a common word;
each the best over the reference answers, averaged over the questions, in %.
"""
from __future__ import annotations

import re
import string
from collections import Counter

import torch
import torch.nn.functional as F

from ..registry import TASKS
from .base import Task

N_BEST, MAX_ANSWER_LENGTH = 20, 30  # Devlin et al.'s (and Transformers') SQuAD post-processing
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
TARGETS = ("start_positions", "end_positions")


def span_loss(start_logits, end_logits, starts, ends, label_smoothing: float = 0.0) -> torch.Tensor:
    """(CE(start) + CE(end)) / 2, each over the window's positions, mean over the batch."""
    start = F.cross_entropy(start_logits, starts, label_smoothing=label_smoothing)
    end = F.cross_entropy(end_logits, ends, label_smoothing=label_smoothing)
    return (start + end) / 2


def best_span(start_logits: list, end_logits: list, offsets: list, n_best: int = N_BEST,
              max_length: int = MAX_ANSWER_LENGTH) -> tuple[float, int, int] | None:
    """(score, first character, end character) of the best valid span of one window, or None.
    ``offsets`` holds each token's characters in the context, (-1, -1) outside it."""
    def top(logits: list) -> list[int]:
        return sorted(range(len(logits)), key=lambda i: (-logits[i], i))[:n_best]

    best = None
    for s in top(start_logits):
        for e in top(end_logits):
            if offsets[s][0] < 0 or offsets[e][0] < 0 or e < s or e - s + 1 > max_length:
                continue
            score = start_logits[s] + end_logits[e]
            if best is None or score > best[0]:
                best = (score, offsets[s][0], offsets[e][1])
    return best


def predictions(start_logits: torch.Tensor, end_logits: torch.Tensor, features: dict,
                examples: list[dict]) -> list[dict]:
    """The predicted answer text of every question (empty when no window has a valid span)."""
    best: dict[int, tuple] = {}
    for i, example in enumerate(features["example"].tolist()):
        found = best_span(start_logits[i].tolist(), end_logits[i].tolist(), features["offsets"][i].tolist())
        if found is not None and (example not in best or found[0] > best[example][0]):
            best[example] = found
    out = []
    for index, example in enumerate(examples):
        span = best.get(index)
        text = example["context"][span[1]:span[2]] if span else ""
        out.append({"id": example["id"], "prediction_text": text})
    return out


_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's normalization: lower case, punctuation removed, then the articles, then
    runs of white space made single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def exact_match(prediction: str, answer: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(answer))


def f1_score(prediction: str, answer: str) -> float:
    """Harmonic mean of the word-overlap precision and recall; 0 when no word is shared (v1.1,
    also when both texts normalize to nothing)."""
    predicted, gold = normalize_answer(prediction).split(), normalize_answer(answer).split()
    same = sum((Counter(predicted) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_scores(preds: list[dict], examples: list[dict]) -> dict[str, float]:
    """Official SQuAD v1.1 exact match and F1 (%) over the questions of ``examples``, each
    scored against its best reference answer; a question without a prediction scores 0."""
    predicted = {p["id"]: p["prediction_text"] for p in preds}
    em = f1 = 0.0
    for example in examples:
        if example["id"] in predicted:
            em += max(exact_match(predicted[example["id"]], a) for a in example["answers"]["text"])
            f1 += max(f1_score(predicted[example["id"]], a) for a in example["answers"]["text"])
    return {"f1": 100.0 * f1 / len(examples), "exact_match": 100.0 * em / len(examples)}


def model_inputs(batch: dict) -> dict:
    return {k: batch[k].long() for k in INPUTS}


class QuestionAnswering(Task):
    name = "question_answering"
    metrics = ("f1", "exact_match")
    input_dtype = torch.long

    def train_batches(self, splits, batch_size, generator, augment):
        """One epoch of shuffled features (the last, smaller batch dropped); no augmentation."""
        n = len(splits.train_labels)
        order = torch.randperm(n, generator=generator).to(splits.train_labels.device)
        for start in range(0, n - batch_size + 1, batch_size):
            idx = order[start:start + batch_size]
            yield {k: v[idx] for k, v in splits.train.items() if k in INPUTS + TARGETS}

    def move(self, batch, device, layout):
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}

    def loss(self, model, batch, label_smoothing=0.0):
        out = model(**model_inputs(batch))
        return span_loss(out.start_logits, out.end_logits, batch["start_positions"].long(),
                         batch["end_positions"].long(), label_smoothing)

    @torch.no_grad()
    def logits(self, model, splits, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Start and end logits of every dev feature (on the CPU) and the mean span loss."""
        model.eval()
        device, starts, ends, loss = next(model.parameters()).device, [], [], 0.0
        n = len(splits.test_labels)
        for first in range(0, n, batch_size):
            batch = {k: v[first:first + batch_size].to(device) for k, v in splits.dev.items()}
            out = model(**model_inputs(batch))
            loss += float(span_loss(out.start_logits, out.end_logits, batch["start_positions"].long(),
                                    batch["end_positions"].long())) * len(batch["input_ids"])
            starts.append(out.start_logits.float().cpu())
            ends.append(out.end_logits.float().cpu())
        return torch.cat(starts), torch.cat(ends), loss / n

    def evaluate(self, model, splits, batch_size):
        start, end, loss = self.logits(model, splits, batch_size)
        dev = {k: splits.dev[k].cpu() for k in ("example", "offsets")}
        return squad_scores(predictions(start, end, dev, splits.examples), splits.examples), loss


TASKS.register("question_answering")(QuestionAnswering())
