"""Tasks on the device side: what a bundle's ``task`` means to the runner, behind one small interface.

A task says how its data is read, what one example's prediction record holds, how the model's outputs
become a prediction, and how predictions are scored. The runner (``edgekit.runner``), the bundle checks
(``edgekit.bundle``) and ``check_model`` know tasks only through :class:`Task`; adding a task is adding a
module here and a line in :data:`TASKS`. The workstation half of each task lives in ``export.tasks``.

Modules are imported when a task is used, so a device pays only for the tasks it runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from edgekit.errors import BundleError, EdgekitError

if TYPE_CHECKING:
    from edgekit.backends import Backend, RuntimeOptions
    from edgekit.bundle import Bundle, Manifest

# manifest 'task' -> module:attribute of its Task; recipes name tasks by the short names in RECIPE_NAMES
TASKS: dict[str, str] = {
    "extractive-qa": "edgekit.tasks.qa:QA",
    "text-classification": "edgekit.tasks.classification:CLASSIFICATION",
    "token-classification": "edgekit.tasks.tokens:TOKENS",
}
RECIPE_NAMES: dict[str, str] = {
    "qa": "extractive-qa",
    "classification": "text-classification",
    "tokens": "token-classification",
}


class TaskModel(Protocol):
    """A bundle made ready to predict: its runtime and the last call's model time."""

    bundle: Bundle
    backend: Backend
    last_model_ms: float

    def predict(self, example: Any) -> dict[str, Any]:
        """The prediction record of one example (the fields of the task's ``record_fields``)."""
        ...


class Task(Protocol):
    """One task's device side."""

    name: str  # the manifest's 'task'
    headline: str  # the metrics.json score a table leads with ('f1', 'accuracy')
    scores: type  # the dataclass of the scores metrics.json holds: their schema when read back (edgekit.result)
    example_noun: str  # 'questions', 'examples'
    record_fields: Mapping[str, type | tuple[type, ...]]  # what predict() writes, besides the runner's fields

    def check_manifest(self, m: Manifest, path: Path) -> None:
        """Refuse, as a BundleError naming the field, settings of this task no model can run with."""
        ...

    def probe_outputs(self, m: Manifest, seq_len: int) -> list[tuple[int, ...]]:
        """The shapes of the model's outputs for one window of ``seq_len`` tokens (``check_model``)."""
        ...

    def load_examples(self, path: Path, split: str | None, m: Manifest, gold: bool = True) -> Sequence[Any]:
        """The dataset's examples (each with an ``id``), checked against the bundle (e.g. its labels). With
        ``gold`` False a task may leave out what only scoring needs, once checked (SQuAD's gold answers, a third
        of a dev set's memory): the runner holds the inputs while the model runs and reads the gold again to
        score."""
        ...

    def load_model(self, bundle_path: str | Path, options: RuntimeOptions, n_best: int) -> TaskModel: ...

    def identity(self, m: Manifest, n_best: int) -> dict[str, Any]:
        """What, besides model, tokenizer and data, must be equal for a run to resume another."""
        ...

    def check_record(self, record: Mapping[str, Any], m: Manifest, example: Any | None) -> None:
        """Raise ``ValueError`` unless a prediction record read back (its fields' types and ranges already
        checked) is one this bundle could have written for ``example`` (None: an example the run leaves out)."""
        ...

    def prediction(self, record: Mapping[str, Any]) -> Any:
        """An example's entry in predictions.json."""
        ...

    def score(self, examples: Sequence[Any], predictions: Mapping[str, Any], m: Manifest) -> dict[str, Any]:
        """The scores metrics.json records (percentages), with the count of examples scored."""
        ...

    def summary(self, metrics: Mapping[str, Any]) -> str:
        """The scores as the one line ``edgekit run`` prints."""
        ...


def get_task(name: str, path: Path | None = None) -> Task:
    """The task a manifest names; a BundleError naming ``path`` (the manifest) for one this edgekit lacks."""
    target = TASKS.get(name)
    if target is None:
        if path is None:
            raise EdgekitError(f"task {name!r}: expected one of {sorted(TASKS)}")
        raise BundleError(path, "field 'task'", f"one of {sorted(TASKS)}, got {name!r}")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def task_of_recipe(short: str) -> str:
    """The manifest task of a recipe's ``task`` ('qa', 'classification')."""
    return RECIPE_NAMES[short]
