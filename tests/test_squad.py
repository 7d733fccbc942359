"""SQuAD v1.1: the official EM/F1 on hand-made answers, span post-processing, answer positions in
tokenized windows, and bad input refused before any work."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch

from bert_fixtures import write_bert_folder, write_squad
from compressible.config import ConfigError, validate_config
from compressible.data import squad as sq
from compressible.data.checksums import IntegrityError
from compressible.tasks import question_answering as qa
from compressible.tasks import task_of_dataset

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_bert_folder(tmp_path_factory.mktemp("bert"))


@pytest.fixture
def files(tmp_path):
    return tmp_path / "squad", write_squad(tmp_path / "squad", train_paragraphs=3, dev_paragraphs=2)


def cfg_of(root, folder, digests, **extra):
    return {"name": "squad", "root": str(root), "tokenizer": str(folder), "sha256": digests,
            "max_seq_length": 32, "doc_stride": 8, **extra}


# ---------------------------------------------------------------- the official metric

def example(qid, *answers):
    return {"id": qid, "context": "", "answers": {"text": list(answers), "answer_start": [0] * len(answers)}}


def test_exact_match_and_f1_by_hand():
    examples = [example("a", "cat"), example("b", "the big red dog"), example("c", "Paris", "in Paris")]
    preds = [{"id": "a", "prediction_text": "The cat!"},  # normalized: articles, case, punctuation -> "cat"
             {"id": "b", "prediction_text": "red dog barked"},  # 2 of 3 predicted words in 3 gold words
             {"id": "c", "prediction_text": "london"}]
    scores = qa.squad_scores(preds, examples)
    # EM: 1 of 3. F1: 1, then P = 2/3, R = 2/3 ("big red dog" after dropping "the"), 0
    assert scores["exact_match"] == pytest.approx(100 / 3, abs=1e-4)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3 + 0) / 3, abs=1e-4)


def test_f1_takes_the_best_reference_answer():
    scores = qa.squad_scores([{"id": "c", "prediction_text": "in paris"}], [example("c", "Paris", "in Paris")])
    assert scores == {"f1": pytest.approx(100.0), "exact_match": pytest.approx(100.0)}


def test_scores_equal_torchmetrics_squad_on_random_answers():
    """An independent implementation of the same official metric (torchmetrics, float32 sums)
    on texts drawn to hit every normalization step: case, punctuation, articles, spacing."""
    import random

    from torchmetrics.functional.text import squad

    rng = random.Random(0)
    words = ["The", "a", "an", "cat", "Cat", "sat", "on", "mat", "Paris", "paris,", "rome!", "x-ray", "then"]

    def text():  # never only articles: the one case where v1.1 and torchmetrics (v2.0's rule) differ
        drawn = (" " * rng.randint(0, 2)).join(rng.choice(words) for _ in range(rng.randint(1, 6)))
        return drawn if qa.normalize_answer(drawn) else text()

    examples = [example(f"q{i}", *(text() for _ in range(rng.randint(1, 3)))) for i in range(300)]
    preds = [{"id": e["id"], "prediction_text": rng.choice([text(), rng.choice(e["answers"]["text"]).upper()])}
             for e in examples]
    reference = squad(preds, [{"id": e["id"], "answers": e["answers"]} for e in examples])
    ours = qa.squad_scores(preds, examples)
    assert 5 < ours["exact_match"] < 95 and 5 < ours["f1"] < 95  # the draws hit and miss
    for metric in ("exact_match", "f1"):
        assert ours[metric] == pytest.approx(float(reference[metric]), rel=1e-5)


def test_v1_1_scores_an_answer_of_only_articles_and_an_empty_prediction_f1_0_and_a_missing_one_0():
    """v1.1's F1 is 0 without a common word, also when both texts normalize to nothing (the v2.0
    script, and torchmetrics, give 1 there); EM compares the normalized texts."""
    scores = qa.squad_scores([{"id": "a", "prediction_text": ""}], [example("a", "the"), example("b", "cat")])
    assert scores == {"f1": 0.0, "exact_match": 50.0}


# ---------------------------------------------------------------- post-processing

def test_best_span_skips_invalid_spans():
    offsets = [(-1, -1), (0, 3), (4, 7), (8, 11), (-1, -1)]
    # highest raw pair is start 3 / end 1 (end before start) and [CLS]/[SEP] (outside the context)
    start = [9.0, 1.0, 2.0, 5.0, 9.0]
    end = [9.0, 4.0, 3.0, 1.0, 9.0]
    score, first, last = qa.best_span(start, end, offsets)
    assert (first, last) == (8, 11) and score == pytest.approx(6.0)  # start 3, end 3
    assert qa.best_span(start, end, offsets, max_length=0) is None


def test_best_span_respects_the_maximum_answer_length():
    offsets = [(-1, -1)] + [(2 * i, 2 * i + 1) for i in range(40)]
    start, end = [0.0] * 41, [0.0] * 41
    start[1], end[40], end[5] = 10.0, 10.0, 5.0  # 40 tokens long: over MAX_ANSWER_LENGTH
    _, first, last = qa.best_span(start, end, offsets)
    assert (first, last) == (0, 9)


def test_predictions_take_the_best_window_of_each_question():
    features = {"example": torch.tensor([0, 0, 1]),
                "offsets": torch.tensor([[[-1, -1], [0, 3], [4, 7]], [[-1, -1], [4, 7], [8, 11]],
                                         [[-1, -1], [0, 3], [4, 7]]])}
    start = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 4.0], [0.0, 0.0, 2.0]])
    end = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 4.0], [0.0, 0.0, 2.0]])
    examples = [{"id": "x", "context": "one two six"}, {"id": "y", "context": "abc def"}]
    preds = qa.predictions(start, end, features, examples)
    assert preds == [{"id": "x", "prediction_text": "six"}, {"id": "y", "prediction_text": "def"}]


# ---------------------------------------------------------------- tokenization

def test_answer_positions_in_a_window_and_cut_answers_point_at_cls():
    spans = [(-1, -1), (-1, -1), (0, 5), (6, 10), (11, 15), (-1, -1)]
    assert sq.answer_positions(spans, 6, 15) == (3, 4)
    assert sq.answer_positions(spans, 7, 9) == (3, 3)  # inside one token
    assert sq.answer_positions(spans, 11, 20) == (0, 0)  # runs past the window: [CLS]
    assert sq.answer_positions([(-1, -1)] * 3, 0, 1) == (0, 0)


def test_tokenized_answers_decode_to_the_answer_text(files, folder):
    root, digests = files
    splits = sq.squad(cfg_of(root, folder, digests))
    tokenizer = sq.load_tokenizer(folder)
    train = json.loads((root / "train-v1.1.json").read_text())
    answers = [q["answers"][0]["text"].lower() for a in train["data"] for p in a["paragraphs"] for q in p["qas"]]
    cut = 0
    for i, example in enumerate(splits.train["example"].tolist()):
        start, end = int(splits.train["start_positions"][i]), int(splits.train["end_positions"][i])
        if start == 0:
            cut += 1
            assert end == 0
            continue
        assert tokenizer.decode(splits.train["input_ids"][i, start:end + 1].tolist()) == answers[example]
    assert cut > 0, "the windows of 32 tokens with stride 8 cut some answers (the test needs such a case)"
    assert len(splits.train["example"].unique()) == len(answers)  # every question has a feature


def test_dev_offsets_cut_the_answer_text_from_the_context(files, folder):
    root, digests = files
    splits = sq.squad(cfg_of(root, folder, digests))
    for i, example in enumerate(splits.dev["example"].tolist()):
        start, end = int(splits.dev["start_positions"][i]), int(splits.dev["end_positions"][i])
        if start:
            context = splits.examples[example]["context"]
            text = context[int(splits.dev["offsets"][i, start, 0]):int(splits.dev["offsets"][i, end, 1])]
            assert text == splits.examples[example]["answers"]["text"][0]


def test_prepared_file_round_trips_and_is_verified(files, folder, tmp_path):
    from compressible.data import load_splits, save_prepared

    root, digests = files
    cfg = cfg_of(root, folder, digests)
    splits = sq.squad(cfg)
    path = tmp_path / "squad.pt"
    save_prepared(splits, path, {"dataset": "squad"})
    loaded = load_splits(path, dict(cfg, test_subset=1))
    assert torch.equal(loaded.train["input_ids"], splits.train["input_ids"])
    assert len(loaded.examples) == 1 and set(loaded.dev["example"].tolist()) == {0}
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sha256 differs"):
        load_splits(path, cfg)


# ---------------------------------------------------------------- bad input

def test_wrong_sha256_is_refused(files, folder):
    root, digests = files
    with pytest.raises(IntegrityError, match="dev-v1.1.json: sha256"):
        sq.squad(cfg_of(root, folder, {"train-v1.1.json": digests["train-v1.1.json"]}))


def rewrite(root, name, text):
    (root / name).write_text(text)
    return hashlib.sha256(text.encode()).hexdigest()


def test_malformed_json_names_the_file(files, folder):
    root, digests = files
    digests = dict(digests, **{"dev-v1.1.json": rewrite(root, "dev-v1.1.json", '{"data": [')})
    with pytest.raises(sq.SquadFormatError, match=r"dev-v1\.1\.json: not valid JSON"):
        sq.squad(cfg_of(root, folder, digests))
    digests["dev-v1.1.json"] = rewrite(root, "dev-v1.1.json", json.dumps({"data": [{"paragraphs": [{}]}]}))
    with pytest.raises(sq.SquadFormatError, match=r"dev-v1\.1\.json: missing or malformed field 'context'"):
        sq.squad(cfg_of(root, folder, digests))


def test_answer_outside_its_context_names_the_question(files, folder):
    root, digests = files
    data = json.loads((root / "train-v1.1.json").read_text())
    qa_entry = data["data"][0]["paragraphs"][1]["qas"][0]
    qa_entry["answers"][0]["answer_start"] += 1
    digests = dict(digests, **{"train-v1.1.json": rewrite(root, "train-v1.1.json", json.dumps(data))})
    with pytest.raises(sq.SquadFormatError, match=f"question {qa_entry['id']}: answer"):
        sq.squad(cfg_of(root, folder, digests))


def raw_config(root, folder, digests, **training):
    return {"experiment": "bert_check", "dataset": cfg_of(root, folder, digests),
            "archs": [{"name": "bert", "pretrained": str(folder)}],
            "methods": [{"label": "SGD", "name": "sgd"}], "seeds": [0],
            "training": {"epochs": 1, "batch_size": 4, **training}, "prunable": "bert_encoder",
            "oneshot": [{"operator": "uniform_magnitude", "levels": [0.5]}], "bnt": {"trials": 0}}


def test_config_check_refuses_what_bert_cannot_run(files, folder, tmp_path):
    root, digests = files
    validate_config(raw_config(root, folder, digests, freeze=["embeddings"], label_smoothing=0.1))
    missing = raw_config(root, tmp_path / "nowhere", digests)
    with pytest.raises(ConfigError, match="dataset.tokenizer"):
        validate_config(missing)
    validate_config(missing, check_files=False)  # a dry run plans without the folder
    bnt = dict(raw_config(root, folder, digests), bnt={"trials": 2})
    with pytest.raises(ConfigError, match="'bnt.trials'.*allowed: 0"):
        validate_config(bnt)
    with pytest.raises(ConfigError, match="'training.freeze.0'.*allowed: embeddings"):
        validate_config(raw_config(root, folder, digests, freeze=["pooler"]))
    image = dict(raw_config(root, folder, digests), archs=[{"name": "resnet20"}])
    with pytest.raises(ConfigError, match="'archs.0.name'.*classification model"):
        validate_config(image)
    no_folder = dict(raw_config(root, folder, digests), archs=[{"name": "bert"}])
    with pytest.raises(ConfigError, match="'archs.0.pretrained'"):
        validate_config(no_folder, check_files=False)


def test_squad_keys_are_refused_on_image_datasets():
    raw = {"experiment": "x", "dataset": {"name": "mnist_embedded", "doc_stride": 8},
           "archs": [{"name": "resnet20"}], "methods": [{"label": "SGD", "name": "sgd"}], "seeds": [0],
           "training": {"epochs": 1, "batch_size": 4}, "oneshot": [{"operator": "global_magnitude", "levels": [0.5]}]}
    with pytest.raises(ConfigError, match="'dataset.doc_stride': only for squad"):
        validate_config(raw)


def test_span_loss_smooths_both_ends():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    target = torch.tensor([0])
    plain = qa.span_loss(logits, logits, target, target)
    smooth = qa.span_loss(logits, logits, target, target, label_smoothing=0.3)
    log_p = torch.log_softmax(logits, 1)[0]
    expected = 0.7 * -log_p[0] + 0.3 * -log_p.mean()  # (1 - ε)·CE + ε·uniform CE
    assert plain == pytest.approx(float(-log_p[0])) and smooth == pytest.approx(float(expected))
    assert task_of_dataset("squad").metrics == ("f1", "exact_match")
