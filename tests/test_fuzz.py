"""Property tests (hypothesis): the decoder and the loaders under random input.

- decoding: whatever the logits, the answer is the context at the reported offsets,
  inside one window's context tokens, and confidence is a probability;
- the SQuAD loader, the predictions reader and the bundle manifest reader: random
  mutations of valid files either load or fail with the documented InputError,
  never anything else.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit.bundle import load_bundle
from edgekit.decode import best_span
from edgekit.errors import InputError
from edgekit.features import QATokenizer
from edgekit.metric import load_predictions
from edgekit.squad import load_squad, parse_squad, sample_path

FAST = settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])

CONTEXT = st.text(alphabet=st.sampled_from([*"abc xyz,.'-é日本語🙂\u0301\n\t"]), min_size=1, max_size=300).filter(
    lambda s: s.strip()
)


@pytest.fixture(scope="module")
def tokenizer(tiny_bundle) -> QATokenizer:
    return QATokenizer.from_file(tiny_bundle.path / "tokenizer.json", max_seq_len=32, doc_stride=8)


@FAST
@given(context=CONTEXT, question=st.text(min_size=1, max_size=20), seed=st.integers(0, 2**32 - 1))
def test_decoded_answer_is_the_context_at_its_offsets(tokenizer, context, question, seed) -> None:
    try:
        windows = tokenizer.windows(question, context)
    except InputError:
        return  # question too long for 32 tokens: refused by design
    rng = np.random.default_rng(seed)
    starts = [rng.normal(size=len(w) + 3) * 5 for w in windows]  # + padding the decoder must ignore
    ends = [rng.normal(size=len(w) + 3) * 5 for w in windows]
    span = best_span(context, windows, starts, ends, n_best=5, max_answer_len=6)
    assert span.text == context[span.start_char : span.end_char]
    assert 0.0 <= span.confidence <= 1.0 + 1e-9
    if span.window >= 0:
        offs = [o for o in windows[span.window].context_offsets if o is not None]
        assert any(o[0] == span.start_char for o in offs) and any(o[1] == span.end_char for o in offs)


def _mutations():
    """Byte-level damage: truncate, flip, insert, delete."""
    return st.lists(
        st.tuples(
            st.sampled_from(["truncate", "flip", "insert", "delete"]), st.integers(0, 10**6), st.binary(max_size=3)
        ),
        min_size=1,
        max_size=4,
    )


def _mutate(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for op, pos, extra in ops:
        if not b:
            break
        i = pos % len(b)
        if op == "truncate":
            del b[i:]
        elif op == "flip":
            b[i] ^= 0xFF
        elif op == "insert":
            b[i:i] = extra
        else:
            del b[i : i + 1 + len(extra)]
    return bytes(b)


SQUAD_BYTES = json.dumps(
    {"version": "1.1", "data": json.loads(sample_path("dev").read_text())["data"][:1]}, ensure_ascii=False
).encode()


@FAST
@given(ops=_mutations())
def test_mutated_squad_file_loads_or_is_refused_cleanly(tmp_path, ops) -> None:
    f = tmp_path / "m.json"
    f.write_bytes(_mutate(SQUAD_BYTES, ops))
    try:
        examples = load_squad(f)
    except InputError as exc:
        assert str(f) in str(exc) and "expected" in str(exc)
    else:
        assert examples and all(
            ex.context[a.start : a.start + len(a.text)] == a.text for ex in examples for a in ex.answers
        )


@FAST
@given(
    doc=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda c: (
            st.lists(c, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "version",
                        "data",
                        "title",
                        "paragraphs",
                        "context",
                        "qas",
                        "id",
                        "question",
                        "answers",
                        "text",
                        "answer_start",
                    ]
                ),
                c,
                max_size=4,
            )
        ),
        max_leaves=20,
    )
)
def test_structurally_random_squad_is_refused_cleanly(doc) -> None:
    try:
        parse_squad(doc, Path("random.json"))
    except InputError as exc:
        assert "random.json" in str(exc)


@FAST
@given(
    obj=st.dictionaries(st.text(max_size=4), st.text(max_size=4) | st.integers() | st.none(), max_size=4)
    | st.lists(st.integers(), max_size=3)
)
def test_predictions_reader(tmp_path, obj) -> None:
    f = tmp_path / "p.json"
    f.write_text(json.dumps(obj))
    try:
        preds = load_predictions(f)
    except InputError as exc:
        assert str(f) in str(exc)
    else:
        assert isinstance(preds, dict) and all(isinstance(v, str) for v in preds.values())


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_mutations())
def test_mutated_manifest_loads_or_is_refused_cleanly(tiny_bundle, tmp_path_factory, ops) -> None:
    d = tmp_path_factory.mktemp("b") / "bundle"
    shutil.copytree(tiny_bundle.path, d)
    m = d / "manifest.json"
    m.write_bytes(_mutate(m.read_bytes(), ops))
    try:
        load_bundle(d)
    except InputError as exc:
        assert str(d) in str(exc)


TSV_BYTES = b"sentence\tlabel\nit 's a charming and often affecting journey . \t1\nunflinchingly bleak \t0\n"
CLINC_BYTES = json.dumps(
    {"test": [["how do i say hello in french", "translate"]], "oos_test": [["how much has the dow changed", "oos"]]}
).encode()


@FAST
@given(ops=_mutations(), which=st.sampled_from(["tsv", "json"]))
def test_mutated_classification_file_loads_or_is_refused_cleanly(tmp_path, ops, which) -> None:
    from edgekit.tasks.classification import load_texts

    f = tmp_path / f"m.{which}"
    f.write_bytes(_mutate(TSV_BYTES if which == "tsv" else CLINC_BYTES, ops))
    try:
        examples = load_texts(f)
    except InputError as exc:
        assert str(f) in str(exc) and "expected" in str(exc) and "\n" not in str(exc)
    else:
        assert examples and all(ex.text.strip() and ex.label and ex.id for ex in examples)


# WNUT-17's shape (word<TAB>tag, a blank line between sentences), words of the kind it holds
CONLL_BYTES = "@paul\tO\nmeets\tO\nSam\tB-person\nSmith\tI-person\nin\tO\nNew\tB-location\nYork\tI-location\n\n\U0001f600\tO\nhttp://t.co/x\tO\n".encode()
CONLL_TAGS = ["O", "B-person", "I-person", "B-location", "I-location"]


@FAST
@given(ops=_mutations(), with_labels=st.booleans())
def test_mutated_conll_file_loads_or_is_refused_cleanly(tmp_path, ops, with_labels) -> None:
    from edgekit.tasks.tokens import load_sentences

    f = tmp_path / "m.conll"
    f.write_bytes(_mutate(CONLL_BYTES, ops))
    try:
        sentences = load_sentences(f, CONLL_TAGS if with_labels else None)
    except InputError as exc:
        assert str(f) in str(exc) and "expected" in str(exc) and "\n" not in str(exc)
    else:
        for s in sentences:
            assert s.words and len(s.words) == len(s.tags) and all(w.strip() == w and w for w in s.words)
            assert not with_labels or set(s.tags) <= set(CONLL_TAGS)


@FAST
@given(lines=st.lists(st.text(alphabet="ab \t-BIO\r", max_size=12), max_size=8))
def test_structurally_random_conll_lines_are_refused_cleanly(tmp_path_factory, lines) -> None:
    from edgekit.tasks.tokens import load_sentences

    f = tmp_path_factory.mktemp("conll") / "x.conll"
    f.write_text("\n".join(lines))
    try:
        sentences = load_sentences(f)
    except InputError as exc:
        assert str(f) in str(exc) and "\n" not in str(exc)
    else:
        assert all(len(s.words) == len(s.tags) for s in sentences)


@FAST
@given(
    doc=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda c: (
            st.lists(c, max_size=3)
            | st.dictionaries(st.sampled_from(["train", "test", "oos_test", "val", "x"]), c, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_structurally_random_clinc_file_is_refused_cleanly(tmp_path_factory, doc) -> None:
    from edgekit.tasks.classification import read_clinc

    f = tmp_path_factory.mktemp("clinc") / "data_full.json"
    f.write_text(json.dumps(doc))
    try:
        examples = read_clinc(f, "test")
    except InputError as exc:
        assert str(f) in str(exc)
    else:
        assert all(isinstance(ex.text, str) and ex.label for ex in examples)


_METRIC_KEYS = ["task", "run_id", "latency_ms", "p50", "peak_rss_mb", "f1", "exact_match", "accuracy", "macro_f1",
                "n_questions", "n_examples", "in_scope_accuracy", "oos_recall"]  # fmt: skip


@FAST
@given(
    doc=st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()
        | st.text(max_size=8)
        | st.sampled_from(["extractive-qa", "text-classification", "r1"]),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(_METRIC_KEYS), c, max_size=8),
        max_leaves=24,
    )
)
def test_a_metrics_file_read_back_is_accepted_only_whole(doc) -> None:
    """What a device or an old run directory sends back as metrics.json: checked, or refused in one InputError
    naming it, never a crash; an accepted one gives its task's summary line."""
    from edgekit.result import check_metrics
    from edgekit.tasks import get_task

    try:
        m = check_metrics(doc, Path("dev/metrics.json"), run_id="r1")
    except InputError as exc:
        assert "dev/metrics.json" in str(exc) and "\n" not in str(exc)
        return
    assert m["run_id"] == "r1" and get_task(m.get("task", "extractive-qa")).summary(m)
