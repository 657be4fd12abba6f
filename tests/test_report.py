"""`edgekit report`: rows, speedups, Pareto front, self-contained HTML, plots, and a real browser render."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from device_tools import require

from edgekit.errors import InputError
from edgekit.export.report import PLOTS, pareto_front, read_inputs, screenshot, write_report
from edgekit.runner import RunConfig, run


def test_pareto_front() -> None:
    pts = [(10, 50), (20, 60), (15, 40), (30, 60), (5, 30), (40, 80)]
    assert pareto_front(pts, lambda p: p[0], lambda p: p[1]) == [(5, 30), (10, 50), (20, 60), (40, 80)]


@pytest.fixture(scope="module")
def student_run(tmp_path_factory, minilm_bundle, dev_path) -> Path:
    out = tmp_path_factory.mktemp("runs") / "minilm"
    run(minilm_bundle.path, dev_path, out, RunConfig(limit=8, warmup=1, progress=False))
    return out


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_bundle, dev_path) -> Path:
    """A second, smaller model measured on this machine in this test run (speedups compare only such runs)."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    run(tiny_bundle.path, dev_path, out, RunConfig(limit=8, warmup=1, progress=False))
    return out


def test_report_files_rows_and_speedup(student_run, tiny_run, tmp_path) -> None:
    report = write_report([student_run, tiny_run], tmp_path / "rep", command=["test"])
    for name in ("report.md", "report.html", "report.json", *PLOTS):
        assert (tmp_path / "rep" / name).stat().st_size > 0, name
        if name.endswith(".png"):
            assert (tmp_path / "rep" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = {r["model"]: r for r in report["rows"]}
    # the baseline is the largest model on the device: here MiniLM, and the tiny model is the "student"
    baseline, small = rows["minilm-test"], rows["tiny-random-bert"]
    assert baseline["speedup"] == 1.0 and baseline["method"] == "untrained head"
    assert small["speedup"] == pytest.approx(baseline["latency_p50_ms"] / small["latency_p50_ms"])
    assert small["n_questions"] == baseline["n_questions"] == 8
    assert report["title"].startswith("edgekit report: teacher vs students on 1 device, 8 questions")
    [line] = report["headline"]  # one device: the teacher against its best student
    assert "tiny-random-bert" in line and "× smaller than minilm-test" in line and "× faster" in line
    md = (tmp_path / "rep" / "report.md").read_text().splitlines()
    assert md[0] == f"# {report['title']}" and md[2] == f"- {line}"  # the headline comes first
    page = (tmp_path / "rep" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(PLOTS) and 'src="http' not in page  # self-contained
    assert "minilm-test" in (tmp_path / "rep" / "report.md").read_text()
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["rows"] == report["rows"]


def test_the_int8_form_of_a_model_is_sped_up_against_its_fp32_form(student_run, minilm_bundle, dev_path, tmp_path):
    """Same parameters, smaller file: the baseline is the largest model on disk, so int8 gets its speedup."""
    from edgekit.export.quantize import quantize_dynamic_bundle

    int8 = quantize_dynamic_bundle(minilm_bundle, tmp_path / "int8")
    run(int8.path, dev_path, tmp_path / "int8-run", RunConfig(limit=8, warmup=1, progress=False))
    report = write_report([student_run, tmp_path / "int8-run"], tmp_path / "rep")
    rows = {r["model"]: r for r in report["rows"]}
    assert rows["minilm-test"]["speedup"] == 1.0 and rows["minilm-test-int8"]["speedup"] is not None
    assert report["title"].startswith("edgekit report: 2 runs on 1 device")  # one model's forms: no "teacher"


def test_size_budgets_name_the_most_accurate_form_that_fits(student_run, tiny_run, tmp_path) -> None:
    report = write_report([student_run, tiny_run], tmp_path / "rep", budgets=[1e5, 0.001, 5.0])
    rows = report["rows"]
    big, small = sorted(range(len(rows)), key=lambda i: -rows[i]["size_mb"])
    assert rows[small]["size_mb"] < 5.0 < rows[big]["size_mb"]  # the tiny model fits 5 MB, MiniLM does not
    picks = {p["budget_mb"]: p for p in report["budgets"]}
    assert sorted(picks) == [0.001, 5.0, 1e5]
    assert picks[0.001]["best"] is None and picks[5.0]["best"] == small
    score = "f1"
    best = max(range(len(rows)), key=lambda i: rows[i][score])  # no limit to speak of: the more accurate one
    assert picks[1e5]["best"] == best and picks[1e5]["kept"] == pytest.approx(1.0)
    assert picks[5.0]["kept"] == pytest.approx(rows[small][score] / rows[big][score])
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Size budgets" in md and "within 0.001 MB: no measured form fits." in md
    assert f"within 5 MB: #{small + 1} tiny-random-bert" in md


def test_a_baseline_scoring_zero_is_reported_without_a_share(student_run, tiny_run, tmp_path) -> None:
    """An untrained baseline on a few questions can score 0: the lines give both scores, never divide by it."""
    from dataclasses import replace

    from edgekit.export.report import Row, budget_lines, budget_picks, headline

    report = write_report([student_run, tiny_run], tmp_path / "rep")
    rows = [Row(**r) for r in report["rows"]]
    rows = [replace(r, f1=0.0) if r.is_baseline else r for r in rows]
    [line] = headline(rows)
    assert "keeps" not in line and "vs 0.0" in line
    picks = budget_picks(rows, [1e5])
    assert picks[0]["kept"] is None and "% of the baseline" not in budget_lines(rows, picks)[0]


def test_one_run_is_not_called_teacher_vs_students(student_run, tmp_path) -> None:
    report = write_report([student_run], tmp_path / "one")
    assert report["title"] == "edgekit report: 1 run on 1 device, 8 questions" and report["headline"] == []


def test_report_refuses_files_it_cannot_read(tmp_path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(InputError, match=r"x\.json.*runner metrics\.json"):
        read_inputs([bad])
    bad.write_text("{not json")
    with pytest.raises(InputError, match=r"x\.json"):
        read_inputs([bad])


@pytest.mark.slow
def test_report_renders_in_headless_chromium(student_run, tiny_run, tmp_path) -> None:
    require("chromium", "chromium")
    write_report([student_run, tiny_run], tmp_path)
    png = screenshot(tmp_path / "report.html", tmp_path / "shot.png", width=1200, height=1600)
    from PIL import Image

    img = Image.open(png).convert("L")
    assert img.size == (1200, 1600)
    # a rendered page has text and plots, not one flat colour
    lo, hi = img.getextrema()
    assert hi - lo > 100 and sum(1 for n in img.histogram() if n) > 20
    assert not (tmp_path / ".chromium-profile").exists()
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.slow
def test_bertscore_is_computed_recorded_and_reported(student_run, tmp_path) -> None:
    from bert_score import BERTScorer

    from benchmarks.bertscore import score_run
    from edgekit.export.models import resolve

    scorer = BERTScorer(model_type=resolve("packaged:all-MiniLM-L6-v2"), num_layers=6, lang="en", device="cpu")
    same = scorer.score(["the Eiffel Tower"], [["the Eiffel Tower", "a tower"]])[2].item()
    other = scorer.score(["seventeen cats"], [["the Eiffel Tower"]])[2].item()
    assert same == pytest.approx(1.0, abs=1e-4) and other < 0.9
    result = score_run(student_run, scorer, "packaged:all-MiniLM-L6-v2", 6)
    assert result["n_questions"] == 8 and 0 < result["f1"] <= 1 and result["model"] == "packaged:all-MiniLM-L6-v2"
    report = write_report([student_run], tmp_path / "rep")
    assert report["rows"][0]["bertscore_f1"] == result["f1"]


def _md_cells(line: str) -> list[str]:
    """A Markdown table row's cells, as a GFM renderer splits them (a backslash escapes the next character)."""
    cells, cell, chars = [], "", iter(line.strip().removeprefix("|").removesuffix("|"))
    for ch in chars:
        if ch == "\\":
            cell += ch + next(chars, "")
        elif ch == "|":
            cells.append(cell)
            cell = ""
        else:
            cell += ch
    return [*cells, cell]


@pytest.mark.parametrize("name", ["a | b", "x\\|y", "<script>alert(1)</script>", "**bold** `code` & [link](http://e)"])
def test_names_from_run_files_stay_inside_their_cell_of_report_md(tiny_run, student_run, tmp_path, name) -> None:
    """A bundle name or method holding ``|``, a backslash or HTML cannot add columns, rows or raw HTML to report.md."""
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["bundle"]["name"] = name
    metrics["device"]["cpu"] = f"cpu {name}"
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    write_report([student_run, run_dir], tmp_path / "rep", command=["test"])
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "<script" not in md and "<" not in md.split("![")[0]
    table = [line for line in md.splitlines() if line.startswith("|")]
    widths = {len(_md_cells(line)) for line in table}
    assert len(widths) == 1 and len(table) == 4  # header, rule, two runs
