"""Every bad input in the catalog gets exit 2 and one clear line; docs/errors.md lists them all."""

from __future__ import annotations

import pytest
from error_catalog import CASES, DOC, Case, Env, run_case


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_bundle, tiny_classifier_bundle) -> Env:
    from edgekit.export.tiny import tiny_classifier
    from edgekit.export.to_onnx import onnx_bundle

    work = tmp_path_factory.mktemp("cases")
    tags = ["O", "B-location", "I-location", "B-person", "I-person"]
    tagger = onnx_bundle(
        tiny_classifier(tags, per_token=True), work / "tiny-tag", "tiny-tag", max_seq_len=64, doc_stride=0
    )
    return Env(work, tiny_bundle.path, tiny_classifier_bundle.path, tagger.path)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.group}: {c.what}" for c in CASES])
def test_bad_input_is_refused_with_one_clear_line(case: Case, env: Env) -> None:
    code, err = run_case(case, env)
    assert code == 2, err
    assert err.startswith("edgekit: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert case.expect in err, err


def test_docs_list_every_case() -> None:
    doc = DOC.read_text()
    missing = [c.what for c in CASES if f"| {c.group} | {c.what} |" not in doc]
    assert not missing, f"run `python -m tests.error_catalog` to regenerate {DOC}: missing {missing}"
