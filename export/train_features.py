"""Training features: SQuAD examples -> padded windows with gold start/end token labels.

Uses the same windowing code as the device runner (``edgekit.features``), so a
student is trained on exactly the inputs it will see on the device. A window that
does not contain the gold answer is labelled with position 0 (the leading special
token), the usual convention for SQuAD v1.1 training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from edgekit.features import QATokenizer, Window, batch_inputs, char_to_token_span
from edgekit.squad import Example


@dataclass
class TrainFeatures:
    """Arrays for training plus the windows they came from (for teacher alignment)."""

    input_ids: np.ndarray  # [N, L] int64, padded with pad_id
    token_type_ids: np.ndarray  # [N, L]
    attention_mask: np.ndarray  # [N, L]
    start_positions: np.ndarray  # [N]
    end_positions: np.ndarray  # [N]
    example_index: np.ndarray  # [N] index into the example list
    windows: list[Window]

    def __len__(self) -> int:
        return len(self.windows)


_ARRAYS = ("input_ids", "token_type_ids", "attention_mask", "start_positions", "end_positions")


def build_train_features(
    examples: list[Example], tok: QATokenizer, pad_id: int, progress: bool = True
) -> TrainFeatures:
    """Window every example and label each window with its gold token span (or 0, 0)."""
    windows: list[Window] = []
    labels: list[tuple[int, int]] = []
    owner: list[int] = []
    for i, ex in enumerate(tqdm(examples, desc="features", unit="q", disable=not progress)):
        ans = ex.answers[0]
        for w in tok.windows(ex.question, ex.context):
            windows.append(w)
            labels.append(char_to_token_span(w, ans.start, ans.start + len(ans.text)) or (0, 0))
            owner.append(i)
    a = batch_inputs(windows, ["input_ids", "token_type_ids", "attention_mask"], pad_id, tok.max_seq_len)
    lab = np.asarray(labels, dtype=np.int64).reshape(-1, 2)
    owner_arr = np.asarray(owner, dtype=np.int64)
    return TrainFeatures(
        a["input_ids"], a["token_type_ids"], a["attention_mask"], lab[:, 0], lab[:, 1], owner_arr, windows
    )


def concat_features(parts: list[TrainFeatures], n_examples: list[int]) -> TrainFeatures:
    """Several files' features as one set; ``n_examples[i]`` is the example count of part i, so that
    ``example_index`` keeps pointing into the examples of all parts listed in the same order."""
    if len(parts) == 1:
        return parts[0]
    offsets = np.cumsum([0, *n_examples[:-1]])
    return TrainFeatures(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in _ARRAYS),
        np.concatenate([p.example_index + o for p, o in zip(parts, offsets, strict=True)]),
        [w for p in parts for w in p.windows],
    )
