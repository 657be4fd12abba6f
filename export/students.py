"""Building students: a subset of the teacher's layers, or a smaller pretrained encoder.

``from_teacher_layers`` is DistilBERT's initialisation generalised to any list of
layer indices: the student has the teacher's architecture with fewer layers, and
every tensor (embeddings, the kept layers, shared relative-position tables, the task's
head) is an exact copy of the teacher's.
"""

from __future__ import annotations

import copy
import re

from edgekit.errors import EdgekitError
from edgekit.export.models import LoadedQA, set_dropout

_LAYER = re.compile(r"^(.*\.layer\.)(\d+)(\..*)$")


def from_teacher_layers(teacher: LoadedQA, layers: list[int], dropout: float | None = None) -> LoadedQA:
    """A student made of the teacher's layers ``layers`` (in that order), all else copied; its dropout
    probabilities are the teacher's unless ``dropout`` is given."""
    n = teacher.model.config.num_hidden_layers
    if not layers or any(not 0 <= i < n for i in layers):
        raise EdgekitError(f"student layers {layers}: expected indices in 0..{n - 1}")
    config = copy.deepcopy(teacher.model.config)
    config.num_hidden_layers = len(layers)
    if dropout is not None:
        set_dropout(config, dropout)
    student = type(teacher.model)._from_config(config)  # the teacher's class: a QA model or a classifier
    source = teacher.model.state_dict()
    target = {}
    for key in student.state_dict():
        m = _LAYER.match(key)
        src_key = f"{m.group(1)}{layers[int(m.group(2))]}{m.group(3)}" if m else key
        target[key] = source[src_key].clone()
    student.load_state_dict(target, strict=True)
    student.eval()
    return LoadedQA(student, teacher.tokenizer, f"{teacher.source} layers {layers}", fresh_head=False)
