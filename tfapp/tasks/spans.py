"""Entity-level precision, recall and F1 over IOB2 tag sequences (exact span match, as CoNLL's conlleval).

    python -c "from tfapp.tasks import spans; print(spans.entity_f1([['B-PER', 'I-PER', 'O']], [['B-PER', 'O', 'O']]))"

An entity is (type, first token, last token). It starts at `B-X`, or at an `I-X` that does not continue an
entity of type X (conlleval's lenient reading of ill-formed predictions); it continues over `I-X` tokens.
A predicted entity counts as correct only when type and both ends match a true one.
"""


def entity_spans(tags):
    """The set of (type, start, end) entities of one IOB2 tag sequence (end inclusive)."""
    spans, kind, start = set(), None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, tag_kind = tag.partition("-")
        continues = prefix == "I" and kind == tag_kind
        if kind is not None and not continues:
            spans.add((kind, start, i - 1))
            kind = None
        if prefix == "B" or (prefix == "I" and not continues):
            kind, start = tag_kind, i
    return spans


def entity_f1(true_sequences, predicted_sequences):
    """{"entity_precision", "entity_recall", "entity_f1"} micro-averaged over all sentences (0 when undefined)."""
    true_count = predicted_count = correct = 0
    for true_tags, predicted_tags in zip(true_sequences, predicted_sequences, strict=True):
        truth, predicted = entity_spans(true_tags), entity_spans(predicted_tags)
        true_count += len(truth)
        predicted_count += len(predicted)
        correct += len(truth & predicted)
    precision = correct / predicted_count if predicted_count else 0.0
    recall = correct / true_count if true_count else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"entity_precision": precision, "entity_recall": recall, "entity_f1": f1}
