"""Vocabulary pruning: drop the word pieces a bundle's questions will not need, with their embedding rows.

A small student spends much of its size on the word embedding: all-MiniLM-L6-v2's 30,522 x 384
table is half its weights, MPNet's 30,527 x 768 a third. Most of those pieces are rare. Pruning
keeps

* every special and added token (ids the runner and the post-processor name),
* every single-character piece, word-initial and continuing (``a``, ``##a``), so that every word
  still tokenizes: WordPiece falls back to shorter pieces, never to ``[UNK]``, for a word whose
  characters the full vocabulary had,
* then the most frequent pieces of the corpus, up to ``keep`` in all.

The corpus is what the bundle's users will ask about, never the evaluation text: training
questions and contexts, mixed half and half with a general English frequency list (wordfreq), so
that an unseen article's words still find their pieces. Ids keep their order, so the pad id and
every id below it stay as they are (the graph may compare ``input_ids`` with the pad id, as MPNet's
position ids do; that is checked). The tokenizer's ``tokenizer.json`` and the graph's word-embedding
initializer are rewritten together, and the manifest records what was kept and from which corpus.

Only WordPiece tokenizers (BERT, MiniLM, MPNet, DistilBERT, ELECTRA, MobileBERT) are pruned: BPE and
unigram vocabularies build pieces from one another, so dropping one can break others.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper
from tokenizers import Tokenizer

from edgekit.atomic import write_bytes
from edgekit.bundle import Bundle, bundle_scratch, fill_bundle, load_bundle, sha256_file
from edgekit.errors import EdgekitError, InputError
from edgekit.jsonfile import read_json
from edgekit.squad import Example

ENGLISH_WORDS = 100_000


@dataclass(frozen=True)
class VocabPruning:
    """What a pruned bundle kept, recorded in its manifest as ``source.vocab_pruning``."""

    kept: int
    of: int
    always_kept: int  # special, added and single-character pieces
    corpus: list[dict[str, str]]  # file name and sha256 of each training text
    english_words: int  # wordfreq's most frequent English words mixed in (0: none)
    pruned_from: str  # sha256 of the source bundle's model file


def corpus_texts(examples: Iterable[Any]) -> list[str]:
    """The questions and (once each) the contexts of QA training examples; a classifier's training texts."""
    seen: set[str] = set()
    texts = []
    for ex in examples:
        if not isinstance(ex, Example):  # a text classifier's example
            texts.append(ex.text)
            continue
        texts.append(ex.question)
        if ex.context not in seen:
            seen.add(ex.context)
            texts.append(ex.context)
    return texts


def english_frequencies(n: int = ENGLISH_WORDS) -> dict[str, float]:
    """wordfreq's ``n`` most frequent English words and their frequencies, lower-case and capitalised."""
    from wordfreq import top_n_list, word_frequency

    freqs: dict[str, float] = {}
    for w in top_n_list("en", n):
        f = word_frequency(w, "en")
        freqs[w] = freqs.get(w, 0.0) + f / 2
        freqs[w.capitalize()] = freqs.get(w.capitalize(), 0.0) + f / 2
    return freqs


def piece_scores(tokenizer: Tokenizer, texts: list[str], english: dict[str, float]) -> Counter[int]:
    """Each piece's share of the training text's pieces, averaged with its share of English's (by word frequency)."""
    scores: Counter[int] = Counter()
    train = Counter(i for enc in tokenizer.encode_batch(texts, add_special_tokens=False) for i in enc.ids)
    total = sum(train.values()) or 1
    weight = 0.5 if english else 1.0
    for i, c in train.items():
        scores[i] += weight * c / total
    if english:
        words = list(english)
        mass = sum(english.values())
        for w, enc in zip(words, tokenizer.encode_batch(words, add_special_tokens=False), strict=True):
            for i in enc.ids:
                scores[i] += 0.5 * english[w] / mass / len(enc.ids)
    return scores


def _wordpiece(tok_json: dict[str, Any], where: Path) -> dict[str, int]:
    model = tok_json.get("model", {})
    if model.get("type") != "WordPiece":
        raise InputError(
            where, "field 'model.type'", f"a WordPiece tokenizer (got {model.get('type')!r}); BPE and unigram are kept"
        )
    return model["vocab"]


def always_kept(tok_json: dict[str, Any], where: Path) -> set[int]:
    """Ids pruning never drops: special and added tokens, and every single-character piece."""
    vocab = _wordpiece(tok_json, where)
    prefix = tok_json["model"].get("continuing_subword_prefix") or "##"
    keep = {a["id"] for a in tok_json.get("added_tokens", [])}
    keep |= {i for p, i in vocab.items() if len(p) == 1 or (p.startswith(prefix) and len(p) == len(prefix) + 1)}
    unk = tok_json["model"].get("unk_token")
    if unk in vocab:
        keep.add(vocab[unk])
    return keep


def check_keep(tok_json: dict[str, Any], keep: int, where: Path) -> tuple[dict[str, int], set[int]]:
    """Refuse a ``keep`` the vocabulary cannot be cut to; returns the vocabulary and its always-kept ids."""
    vocab = _wordpiece(tok_json, where)
    base = always_kept(tok_json, where)
    if keep < len(base):
        raise EdgekitError(
            f"--keep {keep}: expected at least {len(base)} (the special, added and single-character pieces)"
        )
    if keep >= len(vocab):
        raise EdgekitError(f"--keep {keep}: expected fewer than the {len(vocab)} pieces the vocabulary has")
    return vocab, base


def choose_ids(tok_json: dict[str, Any], scores: Counter[int], keep: int, where: Path) -> list[int]:
    """The ``keep`` ids to keep, in their old order: the always-kept ones, then the best scored."""
    vocab, base = check_keep(tok_json, keep, where)
    ranked = sorted((i for i in vocab.values() if i not in base), key=lambda i: (-scores.get(i, 0.0), i))
    return sorted(base | set(ranked[: keep - len(base)]))


def _remap_ids(node: Any, new_id: dict[int, int]) -> Any:
    """Post-processor JSON with every token id renumbered: ``ids`` lists and ``[token, id]`` pairs."""
    if isinstance(node, dict):
        return {k: [new_id[i] for i in v] if k == "ids" else _remap_ids(v, new_id) for k, v in node.items()}
    if isinstance(node, list):
        if len(node) == 2 and isinstance(node[0], str) and isinstance(node[1], int):
            return [node[0], new_id[node[1]]]
        return [_remap_ids(v, new_id) for v in node]
    return node


def pruned_tokenizer(tok_json: dict[str, Any], kept: list[int]) -> dict[str, Any]:
    """``tokenizer.json`` over the kept pieces, renumbered 0..len(kept)-1 in their old order."""
    new_id = {old: new for new, old in enumerate(kept)}
    out = json.loads(json.dumps(tok_json))
    out["model"]["vocab"] = {p: new_id[i] for p, i in tok_json["model"]["vocab"].items() if i in new_id}
    out["added_tokens"] = [{**a, "id": new_id[a["id"]]} for a in tok_json.get("added_tokens", [])]
    if out.get("post_processor"):
        out["post_processor"] = _remap_ids(out["post_processor"], new_id)
    if out.get("padding"):
        out["padding"]["pad_id"] = new_id[out["padding"]["pad_id"]]
    return out


def word_embedding_node(model: onnx.ModelProto, where: Path) -> onnx.NodeProto:
    """The Gather that looks ``input_ids`` up in an initializer: the word embedding of an exported encoder."""
    inits = {t.name for t in model.graph.initializer}
    found = [n for n in model.graph.node if n.op_type == "Gather" and n.input[1] == "input_ids" and n.input[0] in inits]
    if len(found) != 1:
        raise InputError(
            where, "graph", f"one word-embedding Gather of input_ids over an initializer (found {len(found)})"
        )
    return found[0]


def pruned_graph(model: onnx.ModelProto, kept: list[int], where: Path) -> int:
    """Cut the graph's word-embedding table to ``kept``, in place; returns the weights removed."""
    name = word_embedding_node(model, where).input[0]
    table = next(t for t in model.graph.initializer if t.name == name)
    weight = numpy_helper.to_array(table)
    if weight.ndim != 2 or weight.shape[0] <= kept[-1]:
        raise InputError(where, f"initializer {table.name}", f"a [vocab, hidden] table, got shape {weight.shape}")
    table.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(weight[kept]), table.name))
    return (weight.shape[0] - len(kept)) * weight.shape[1]


def prune_bundle(
    src: Bundle,
    out_dir: str | Path,
    name: str,
    keep: int,
    examples: list[Any],
    corpus_files: list[Path],
    english_words: int = ENGLISH_WORDS,
) -> Bundle:
    """Write ``src`` (an fp32 ONNX bundle) with its vocabulary cut to ``keep`` pieces chosen on ``examples``."""
    m = src.manifest
    if m.model_format != "onnx" or m.precision != "fp32":
        raise EdgekitError(
            f"{src.path}: expected an fp32 ONNX bundle to prune (quantize afterwards), got {m.model_format}/{m.precision}"
        )
    tok_json = read_json(src.tokenizer_path, "tokenizer")
    kept = choose_ids(
        tok_json,
        piece_scores(
            Tokenizer.from_file(str(src.tokenizer_path)),
            corpus_texts(examples),
            english_frequencies(english_words) if english_words else {},
        ),
        keep,
        src.tokenizer_path,
    )
    if m.pad_id >= len(kept) or kept[m.pad_id] != m.pad_id:
        raise EdgekitError(f"{src.tokenizer_path}: pad id {m.pad_id} would move; expected every id below it kept")
    record = VocabPruning(
        kept=len(kept),
        of=len(tok_json["model"]["vocab"]),
        always_kept=len(always_kept(tok_json, src.tokenizer_path)),
        corpus=[{"file": f.name, "sha256": sha256_file(f)} for f in corpus_files],
        english_words=english_words,
        pruned_from=m.files[m.model_file].sha256,
    )
    graph = onnx.load(str(src.model_path))
    removed = pruned_graph(graph, kept, src.model_path)
    with bundle_scratch(out_dir, (src.path,)) as tmp:
        model_file, tok_file = tmp / m.model_file, tmp / m.tokenizer_file
        onnx.save(graph, str(model_file))
        tok_file.write_text(json.dumps(pruned_tokenizer(tok_json, kept), ensure_ascii=False))
        manifest = replace(
            m,
            name=name,
            vocab_size=len(kept),
            params=m.params - removed,
            source={**m.source, "vocab_pruning": asdict(record)},
        )
        fill_bundle(tmp, model_file, tok_file, manifest, out_dir)
    return load_bundle(out_dir)


@dataclass(frozen=True)
class CurveSettings:
    """What a vocabulary curve measures: each ``keep`` size at each word-embedding width, on ``limit`` examples."""

    keep: tuple[int, ...]
    embedding_bits: tuple[int, ...] = (8,)
    english_words: int = ENGLISH_WORDS
    limit: int | None = None  # first N evaluation examples (None: all)
    threads: int | None = None
    split: str | None = None  # the evaluation file's split, for a file holding several (CLINC150)


def coverage(pieces: Counter[str], pruned: Bundle, texts: list[str]) -> dict[str, float]:
    """Share of the texts' full-vocabulary tokens (``pieces``, counted once for every size) the pruned vocabulary
    holds, and how many more tokens the texts take."""
    kept = set(read_json(pruned.tokenizer_path, "tokenizer")["model"]["vocab"])
    n_full = sum(pieces.values())
    n_cut = sum(len(enc.ids) for enc in pruned.tokenizer().tokenizer.encode_batch(texts, add_special_tokens=False))
    return {
        "dev_tokens_covered": sum(c for p, c in pieces.items() if p in kept) / n_full,
        "dev_tokens_growth": n_cut / n_full - 1,
    }


def _reuse_or_make(path: Path, make: Any) -> Bundle:
    """The verified bundle at ``path``, or ``make(path)``'s: a curve stopped half-way resumes where it was."""
    try:
        return load_bundle(path)
    except EdgekitError:
        return make(path)


def vocab_curve(
    src: Bundle,
    work: Path,
    settings: CurveSettings,
    corpus: list[Any],
    corpus_files: list[Path],
    dataset: Path,
    dev: list[Any],
    progress: Any = print,
) -> dict[str, Any]:
    """The vocabulary curve of the fp32 ONNX bundle ``src``: for each ``keep`` size, prune it on ``corpus``
    (:func:`prune_bundle`), quantize it to dynamic int8 at each embedding width, and run it over ``dataset``
    in a process of its own, as a user runs it. The full vocabulary's 8-bit row is the baseline, in the same
    run. Bundles and runs are built under ``work`` and reused when verified. Returns the results document.
    """
    from edgekit.export.pipeline import run_fresh
    from edgekit.export.quantize import DynamicInt8, quantize_dynamic_bundle
    from edgekit.tasks import get_task

    headline = get_task(src.manifest.task).headline
    name = src.manifest.name.removesuffix("-fp32-onnx")
    dev_texts = corpus_texts(dev[: settings.limit])
    encoded = src.tokenizer().tokenizer.encode_batch(dev_texts, add_special_tokens=False)
    dev_pieces = Counter(p for enc in encoded for p in enc.tokens)
    extra = [*(["--threads", str(settings.threads)] if settings.threads else [])]
    extra += ["--split", settings.split] if settings.split else []
    rows: list[dict[str, Any]] = []
    metrics: dict[str, Any] = {}
    for keep in [None, *sorted(set(settings.keep), reverse=True)]:
        label = "full" if keep is None else str(keep)
        fp32 = (
            src
            if keep is None
            else _reuse_or_make(
                work / f"vocab{label}",
                lambda out, k=keep: prune_bundle(
                    src, out, f"{name}-vocab{k}-fp32-onnx", k, corpus, corpus_files, settings.english_words
                ),
            )
        )
        covered = coverage(dev_pieces, fp32, dev_texts)  # a property of the vocabulary: the same for every width
        for bits in sorted(set(settings.embedding_bits) | {8}, reverse=True):  # the 8-bit row first: the baseline
            tag = label if bits == 8 else f"{label}-emb4"
            int8 = _reuse_or_make(
                work / f"vocab{tag}-int8",
                lambda out, b=fp32, e=bits: quantize_dynamic_bundle(
                    b,
                    out,
                    b.manifest.name.removesuffix("-fp32-onnx") + ("-int8-onnx" if e == 8 else "-int8-onnx-emb4"),
                    DynamicInt8(embedding_bits=e),
                ),
            )
            progress(f"{tag}: {int8.manifest.vocab_size} pieces, {int8.model_size_mb:.1f} MB; running {dataset.name}")
            run_dir = work / f"run-{tag}"
            metrics = run_fresh(int8.path, dataset, run_dir, settings.limit or len(dev), extra)
            scores = {k: metrics[k] for k in ("exact_match", "f1", "accuracy", "macro_f1") if k in metrics}
            row = {
                "name": int8.manifest.name,
                "keep": int8.manifest.vocab_size,
                "full": keep is None,
                "embedding_bits": bits,
                "params": int8.manifest.params,
                "fp32_model_mb": fp32.model_size_mb,
                "int8_model_mb": int8.model_size_mb,
                "int8_bundle_mb": int8.size_mb,
                **scores,
                "n_questions": metrics.get("n_questions", metrics.get("n_examples")),
                **covered,
                "run": str(run_dir),
                "bundle_path": str(int8.path),
                "model_sha256": int8.manifest.files[int8.manifest.model_file].sha256,
            }
            base = rows[0] if rows else row
            row[f"delta_{headline}"] = row[headline] - base[headline]
            row["mb_saved"] = base["int8_model_mb"] - row["int8_model_mb"]
            rows.append(row)
            progress(
                f"  {headline} {row[headline]:.2f} ({row[f'delta_{headline}']:+.2f}), {row['mb_saved']:.1f} MB saved"
            )
    return {
        "bundle": name,
        "task": src.manifest.task,
        "headline": headline,
        "source_sha256": src.manifest.files[src.manifest.model_file].sha256,
        "train_corpus": ", ".join(f.name for f in corpus_files),
        "english_words": settings.english_words,
        "dataset": dataset.name,
        "device": metrics.get("device"),
        "rows": rows,
    }


def curve_markdown(doc: dict[str, Any]) -> str:
    """vocab-curve.md: one row per vocabulary size and embedding width, the baseline first."""
    from edgekit.text import md_table

    h = doc["headline"]
    head = ["bundle", "pieces", "embedding bits", "int8 model MB", "MB saved", h, f"Δ {h}", "dev tokens covered"]
    body = [
        [
            r["name"],
            f"{r['keep']:,}",
            r["embedding_bits"],
            f"{r['int8_model_mb']:.1f}",
            f"{r['mb_saved']:.1f}",
            f"{r[h]:.2f}",
            f"{r[f'delta_{h}']:+.2f}",
            f"{100 * r['dev_tokens_covered']:.1f}%",
        ]
        for r in doc["rows"]
    ]
    title = f"# Vocabulary curve of {doc['bundle']} ({doc['dataset']}, {doc['rows'][0]['n_questions']:,} examples)"
    return "\n".join([title, "", *md_table(head, body), ""])


def curve_plot(doc: dict[str, Any], out: Path) -> None:
    """vocab-curve.png: the headline score against the int8 model's size, one line per embedding width."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = doc["headline"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for bits in sorted({r["embedding_bits"] for r in doc["rows"]}, reverse=True):
        rows = sorted((r for r in doc["rows"] if r["embedding_bits"] == bits), key=lambda r: r["int8_model_mb"])
        ax.plot([r["int8_model_mb"] for r in rows], [r[h] for r in rows], "o-", label=f"{bits}-bit word embedding")
        for r in rows:
            ax.annotate(f"{r['keep']:,}", (r["int8_model_mb"], r[h]), textcoords="offset points", xytext=(4, 4))
    ax.margins(x=0.15, y=0.12)  # room for the labels of the end points
    ax.set_xlabel("int8 model MB")
    ax.set_ylabel(f"{h} on {doc['dataset']}")
    ax.set_title(f"{doc['bundle']}: word pieces kept")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=120)
    plt.close(fig)
    write_bytes(out, png.getvalue())
