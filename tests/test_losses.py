"""Distillation losses against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from edgekit.export.losses import attention_mse, hard_loss, hidden_mse, pkd_cls, qa_kd_loss, soft_loss


def test_soft_loss_by_hand() -> None:
    # one example, two positions; T = 2
    s = torch.tensor([[0.0, 2.0]])
    t = torch.tensor([[2.0, 0.0]])
    mask = torch.tensor([[True, True]])
    ps = torch.softmax(s / 2, -1)[0].tolist()
    pt = torch.softmax(t / 2, -1)[0].tolist()
    kl = sum(pt[i] * math.log(pt[i] / ps[i]) for i in range(2))
    assert soft_loss(s, t, mask, 2.0).item() == pytest.approx(4 * kl, rel=1e-6)


def test_soft_loss_is_batchmean_not_elementwise_mean() -> None:
    # the same row twice: batchmean equals the per-row value, independent of sequence length
    s = torch.randn(1, 384)
    t = torch.randn(1, 384)
    mask = torch.ones(1, 384, dtype=torch.bool)
    one = soft_loss(s, t, mask, 1.0)
    two = soft_loss(s.repeat(2, 1), t.repeat(2, 1), mask.repeat(2, 1), 1.0)
    assert two.item() == pytest.approx(one.item(), rel=1e-5)
    wrong = torch.nn.KLDivLoss()(torch.log_softmax(s, -1), torch.softmax(t, -1))  # "mean" reduction
    assert one.item() == pytest.approx(wrong.item() * 384, rel=1e-4)


def test_masked_positions_do_not_count() -> None:
    s = torch.tensor([[0.0, 1.0, 50.0]])
    t = torch.tensor([[1.0, 0.0, -50.0]])
    mask = torch.tensor([[True, True, False]])
    assert soft_loss(s, t, mask, 1.0).item() == pytest.approx(soft_loss(s[:, :2], t[:, :2], mask[:, :2], 1.0).item())
    assert soft_loss(t, t, mask, 3.0).item() == pytest.approx(0.0, abs=1e-6)


def test_hard_loss_by_hand() -> None:
    logits = torch.tensor([[1.0, 2.0, 3.0, 99.0]])
    mask = torch.tensor([[True, True, True, False]])
    want = -math.log(math.exp(3) / (math.exp(1) + math.exp(2) + math.exp(3)))
    assert hard_loss(logits, torch.tensor([2]), mask).item() == pytest.approx(want, rel=1e-6)


def test_qa_kd_loss_mixes_by_alpha() -> None:
    torch.manual_seed(0)
    b, n = 3, 10
    start, end, ts, te = (torch.randn(b, n) for _ in range(4))
    sp, ep = torch.tensor([1, 2, 3]), torch.tensor([2, 2, 5])
    am = torch.ones(b, n, dtype=torch.long)
    tm = torch.ones(b, n, dtype=torch.bool)
    parts = qa_kd_loss(start, end, sp, ep, am, ts, te, tm, alpha=0.3, temperature=2.0)
    hard = (hard_loss(start, sp, am) + hard_loss(end, ep, am)) / 2
    soft = (soft_loss(start, ts, tm, 2.0) + soft_loss(end, te, tm, 2.0)) / 2
    assert parts["loss"].item() == pytest.approx(0.3 * hard.item() + 0.7 * soft.item(), rel=1e-6)
    assert qa_kd_loss(start, end, sp, ep, am)["loss"].item() == pytest.approx(hard.item())


def test_intermediate_losses() -> None:
    s = torch.ones(1, 2, 4)
    t = torch.zeros(1, 2, 4)
    mask = torch.tensor([[1, 0]])
    assert hidden_mse(s, t, mask).item() == pytest.approx(1.0)
    proj = torch.nn.Linear(4, 4, bias=False)
    torch.nn.init.zeros_(proj.weight)
    assert hidden_mse(s, t, mask, proj).item() == pytest.approx(0.0)
    att_s = torch.full((1, 2, 2, 2), 0.5)
    att_t = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]] * 2])
    # only the (0, 0) query/key pair is real: (0.5 - 1)^2
    assert attention_mse(att_s, att_t, mask).item() == pytest.approx(0.25)
    a = torch.tensor([[[1.0, 0.0]]])
    b = torch.tensor([[[0.0, 3.0]]])
    assert pkd_cls([a], [b]).item() == pytest.approx(2.0)  # |e1 - e2|^2
    assert pkd_cls([a], [a * 5]).item() == pytest.approx(0.0)


def test_a_classifiers_texts_without_gold_labels_take_no_part_in_the_hard_loss() -> None:
    """Augmented copies carry label -100: the hard term averages over the others, and a batch of copies
    alone is the soft term, never NaN."""
    from edgekit.export.losses import IGNORE_INDEX, classification_kd_loss

    torch.manual_seed(0)
    logits, teacher = torch.randn(4, 3), torch.randn(4, 3)
    labels = torch.tensor([0, 2, IGNORE_INDEX, IGNORE_INDEX])
    mixed = classification_kd_loss(logits, labels, teacher, alpha=0.5, temperature=4.0)
    assert torch.isclose(mixed["hard"], F.cross_entropy(logits[:2], labels[:2]))
    copies = classification_kd_loss(logits, torch.full((4,), IGNORE_INDEX), teacher, alpha=0.5, temperature=4.0)
    assert copies["hard"] == 0 and torch.isclose(copies["loss"], 0.5 * copies["soft"])
