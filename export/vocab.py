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


def choose_ids(tok_json: dict[str, Any], scores: Counter[int], keep: int, where: Path) -> list[int]:
    """The ``keep`` ids to keep, in their old order: the always-kept ones, then the best scored."""
    vocab = _wordpiece(tok_json, where)
    base = always_kept(tok_json, where)
    if keep < len(base):
        raise EdgekitError(
            f"--keep {keep}: expected at least {len(base)} (the special, added and single-character pieces)"
        )
    if keep >= len(vocab):
        raise EdgekitError(f"--keep {keep}: expected fewer than the {len(vocab)} pieces the vocabulary has")
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
