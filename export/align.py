"""Cross-tokenizer alignment of teacher logits to student token positions, by characters.

A student window covers the context characters [c0, c1). The teacher is run on
the same question with ``context[c0:c1]``, so it sees the same text as the
student; each student context token then takes the teacher logit of the teacher
token with the *same character span*. Tokens with no such twin (a word split
differently, special tokens) are left unaligned and masked out of the soft loss.
Position 0 (the leading special token, [CLS] / <s>) is aligned to position 0: both
models use it as the no-answer position. Nothing here depends on a particular
tokenizer pair, so any teacher/student combination works; with identical
tokenizers every position aligns.
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.features import QATokenizer, Window


def teacher_window(student: Window, question: str, context: str, teacher_tok: QATokenizer) -> tuple[Window, np.ndarray]:
    """The teacher input for one student window, and the student->teacher position map.

    ``index[i]`` is the teacher position aligned with student position ``i``, or -1.
    """
    spans = [o for o in student.context_offsets if o is not None]
    if not spans:
        raise EdgekitError("student window without context tokens cannot be aligned")
    c0, c1 = spans[0][0], spans[-1][1]
    windows = teacher_tok.windows(question, context[c0:c1])
    if len(windows) != 1:
        raise EdgekitError(
            f"teacher needs {len(windows)} windows for one student window: expected the teacher's max_seq_len "
            f"({teacher_tok.max_seq_len}) to exceed the student's"
        )
    tw = windows[0]
    where = {(o[0] + c0, o[1] + c0): j for j, o in enumerate(tw.context_offsets) if o is not None}
    index = np.full(len(student), -1, dtype=np.int64)
    for i, o in enumerate(student.context_offsets):
        if o is not None:
            index[i] = where.get(o, -1)
    if student.context_offsets[0] is None and tw.context_offsets[0] is None:
        index[0] = 0
    return tw, index
