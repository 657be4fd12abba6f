"""Students built from teacher layers are exact copies of the chosen tensors."""

from __future__ import annotations

import pytest
import torch

from edgekit.errors import EdgekitError
from edgekit.export.models import load_qa
from edgekit.export.students import from_teacher_layers
from tests.conftest import TEACHER_DIR


@pytest.fixture(scope="module")
def teacher():
    return load_qa(str(TEACHER_DIR))


def test_copied_tensors_are_exactly_the_teachers(teacher) -> None:
    layers = [0, 5, 11]
    student = from_teacher_layers(teacher, layers)
    assert student.model.config.num_hidden_layers == 3
    t_sd, s_sd = teacher.model.state_dict(), student.model.state_dict()
    for key, value in s_sd.items():
        if ".layer." in key:
            j = int(key.split(".layer.")[1].split(".")[0])
            src = key.replace(f".layer.{j}.", f".layer.{layers[j]}.")
        else:
            src = key
        assert torch.equal(value, t_sd[src]), key
    assert student.params < teacher.params


def test_bad_layer_indices(teacher) -> None:
    with pytest.raises(EdgekitError, match="expected indices"):
        from_teacher_layers(teacher, [0, 12])
