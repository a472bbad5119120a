"""Tiny random-init BERT classifiers, saved the way the real scorer models are: a transformers
folder (regard, like ``sasha/regardv3``) and a Detoxify checkpoint (``torch.save`` of
``{"config", "state_dict"}``, the format ``detoxify.Detoxify(checkpoint=...)`` loads). Real
transformers / Detoxify code runs on them; only the weights are small and random."""

from __future__ import annotations

from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [
    "the", "a", "an", "is", "are", "was", "were", "be", "he", "she", "they", "you", "we",
    "it", "his", "her", "their", "of", "and", "or", "to", "in", "on", "at", "for", "with",
    "as", "by", "from", "that", "this", "not", "no", "very", "good", "bad", "kind", "cruel",
    "nice", "day", "person", "people", "man", "woman", "known", "worked", "has", "have",
    "had", "quiet", "loud", "stupid", "idiot", "wonderful", "horrible", "weather", "mild",
    "faith", "religion", "actor", "actress", ".", ",", "!", "?", "'", "-",
]
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
VOCAB = SPECIALS + WORDS + LETTERS + [f"##{c}" for c in LETTERS]

# Detoxify's "original" model: its six Jigsaw classes, as its training config names them
DETOXIFY_CLASSES = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]


def build_tiny_bert_classifier(out: Path, id2label: dict[int, str], *, seed: int = 0) -> Path:
    """Save a 1-layer BERT sequence classifier with `id2label` and a WordPiece tokenizer."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    out.mkdir(parents=True, exist_ok=True)
    BertTokenizer(vocab={w: i for i, w in enumerate(VOCAB)}).save_pretrained(out)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, num_labels=len(id2label),
        # BERT's default 0.02 gives every text nearly the same pooled output, hence the same
        # scores; larger weights make the scores depend on the text
        initializer_range=0.5,
        id2label=dict(id2label), label2id={v: k for k, v in id2label.items()},
    )
    BertForSequenceClassification(config).save_pretrained(out)
    return out


def build_tiny_detoxify(out: Path, *, classes: list[str] | None = None, seed: int = 0) -> Path:
    """Save ``out/tiny.ckpt`` in Detoxify's checkpoint format, its architecture in ``out/arch``.

    Detoxify reads the architecture's config from the checkpoint's ``model_type`` (a hub id in the
    released checkpoints, e.g. ``bert-base-uncased``) before anything else, so this one names the
    local folder: the whole load stays offline."""
    import torch
    from transformers import BertForSequenceClassification

    classes = classes or DETOXIFY_CLASSES
    arch = build_tiny_bert_classifier(out / "arch", {i: c for i, c in enumerate(classes)},
                                      seed=seed)
    model = BertForSequenceClassification.from_pretrained(arch)
    checkpoint = {
        "config": {
            "arch": {"args": {"model_type": str(arch),
                              "model_name": "BertForSequenceClassification",
                              "tokenizer_name": "BertTokenizer", "num_classes": len(classes)}},
            "dataset": {"args": {"classes": classes}},
        },
        "state_dict": model.state_dict(),
    }
    path = out / "tiny.ckpt"
    torch.save(checkpoint, path)
    return path
