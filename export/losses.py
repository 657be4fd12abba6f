"""Distillation losses, as pure functions of tensors: extractive QA, text and token classification.

The main objective (Hinton et al.; DistilBERT; TextBrewer's ``kd_ce_loss``) on
a classifier's logits, or on QA's start and end logits (each a distribution over positions)::

    loss = alpha * CE(student, gold) + (1 - alpha) * T² * KL(softmax(teacher/T) || softmax(student/T))

KL is summed over positions and averaged over examples ("batchmean"). The often
copied ``nn.KLDivLoss()`` default ("mean") divides by every logit, i.e. also by
the sequence length, silently shrinking the soft loss ~384 times. T² keeps the
soft-target gradients on the same scale as the hard ones when T changes.
Positions where ``mask`` is False (padding, tokens the teacher has no aligned
logit for) are excluded from both distributions.

Defaults: T = 2.0 and alpha = 0.5, the values DistilBERT and Hugging Face's
distillation example use for SQuAD (classification recipes set T = 4, the worked
example's value for a sequence classifier).

Optional intermediate-layer terms, each with its own weight in the recipe:
``hidden_mse`` (FitNets; a learned projection when widths differ),
``attention_mse`` (TinyBERT attention maps) and ``pkd_cls`` (Patient KD:
normalised [CLS] states over several layers).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgekit.export.recipes import DEFAULT_ALPHA, DEFAULT_TEMPERATURE

IGNORE_INDEX = -100  # torch's cross-entropy default: a target that takes no part in the hard loss
_NEG = -1e4  # large negative instead of -inf: keeps softmax finite under bf16 autocast


def masked_log_softmax(logits: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log softmax(logits / T) over the positions where ``mask`` is True."""
    return F.log_softmax(logits.float().masked_fill(~mask, _NEG) / temperature, dim=-1)


def soft_loss(
    student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, temperature: float = DEFAULT_TEMPERATURE
) -> torch.Tensor:
    """T² · KL(softmax(teacher/T) || softmax(student/T)), summed over positions, mean over the batch.

    ``student`` and ``teacher`` are [batch, seq] logits, ``mask`` [batch, seq] bool.
    Rows with no valid position contribute 0.
    """
    mask = mask.bool()
    s = masked_log_softmax(student, mask, temperature)
    t = masked_log_softmax(teacher, mask, temperature)
    kl = (t.exp() * (t - s)).masked_fill(~mask, 0.0).sum(dim=-1)
    kl = kl * mask.any(dim=-1)
    return kl.mean() * temperature**2


def hard_loss(logits: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of gold positions over the unmasked positions, mean over the batch."""
    return F.nll_loss(masked_log_softmax(logits, mask.bool()), positions)


def qa_kd_loss(
    start: torch.Tensor,
    end: torch.Tensor,
    start_positions: torch.Tensor,
    end_positions: torch.Tensor,
    attention_mask: torch.Tensor,
    teacher_start: torch.Tensor | None = None,
    teacher_end: torch.Tensor | None = None,
    teacher_mask: torch.Tensor | None = None,
    alpha: float = DEFAULT_ALPHA,
    temperature: float = DEFAULT_TEMPERATURE,
) -> dict[str, torch.Tensor]:
    """The start/end objective; returns the total and its parts for logging.

    Hard and soft terms are each the mean of their start and end parts. Without
    teacher logits (or with alpha = 1) this is plain fine-tuning.
    """
    mask = attention_mask.bool()
    hard = (hard_loss(start, start_positions, mask) + hard_loss(end, end_positions, mask)) / 2
    if teacher_start is None or alpha >= 1.0:
        return {"loss": hard, "hard": hard.detach()}
    kd_mask = mask & teacher_mask.bool()
    soft = (
        soft_loss(start, teacher_start, kd_mask, temperature) + soft_loss(end, teacher_end, kd_mask, temperature)
    ) / 2
    return {"loss": alpha * hard + (1 - alpha) * soft, "hard": hard.detach(), "soft": soft.detach()}


def classification_kd_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_logits: torch.Tensor | None = None,
    alpha: float = DEFAULT_ALPHA,
    temperature: float = DEFAULT_TEMPERATURE,
) -> dict[str, torch.Tensor]:
    """A sequence classifier's objective over [batch, labels] logits; returns the total and its parts.

    The same two terms as :func:`qa_kd_loss`, over labels instead of positions. Without teacher
    logits (or with alpha = 1) this is plain fine-tuning. A label of -100 marks a text the teacher alone
    teaches (an augmented copy): the hard term averages over the others and is 0 in a batch of none."""
    known = labels != IGNORE_INDEX
    hard = F.cross_entropy(logits.float(), labels, reduction="sum") / known.sum().clamp(min=1)
    if teacher_logits is None or alpha >= 1.0:
        return {"loss": hard, "hard": hard.detach()}
    every = torch.ones_like(logits, dtype=torch.bool)
    soft = soft_loss(logits, teacher_logits, every, temperature)
    return {"loss": alpha * hard + (1 - alpha) * soft, "hard": hard.detach(), "soft": soft.detach()}


def token_kd_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_logits: torch.Tensor | None = None,
    alpha: float = DEFAULT_ALPHA,
    temperature: float = DEFAULT_TEMPERATURE,
) -> dict[str, torch.Tensor]:
    """A tagger's objective over [batch, seq, tags] logits; returns the total and its parts.

    The two terms of :func:`classification_kd_loss`, each position with a label (a word's first sub-word) one
    example: the hard term is the cross-entropy over the gold-tagged positions, the soft term T² · KL over those
    and the positions only the teacher tags (label -1: words of extra, unlabelled sentences), each averaged over
    its positions. Every other position (later sub-words, special tokens, padding: label -100) takes part in
    neither."""
    gold, taught = labels >= 0, labels != IGNORE_INDEX
    hard = F.cross_entropy(logits.float()[gold], labels[gold], reduction="sum") / gold.sum().clamp(min=1)
    if teacher_logits is None or alpha >= 1.0:
        return {"loss": hard, "hard": hard.detach()}
    s = F.log_softmax(logits.float()[taught] / temperature, dim=-1)
    t = F.log_softmax(teacher_logits.float()[taught] / temperature, dim=-1)
    soft = (t.exp() * (t - s)).sum() / taught.sum().clamp(min=1) * temperature**2
    return {"loss": alpha * hard + (1 - alpha) * soft, "hard": hard.detach(), "soft": soft.detach()}


def hidden_mse(
    student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, proj: torch.nn.Module | None = None
) -> torch.Tensor:
    """FitNets hint loss: MSE between (projected) student and teacher hidden states on real tokens."""
    if proj is not None:
        student = proj(student)
    m = mask.bool().unsqueeze(-1)
    diff = (student.float() - teacher.float()).pow(2).masked_fill(~m, 0.0)
    return diff.sum() / (m.sum() * student.shape[-1]).clamp(min=1)


def attention_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """TinyBERT attention loss: MSE of attention probabilities [batch, heads, q, k] on real query/key pairs.

    Needs the same number of heads; when they differ, both are averaged over heads first.
    """
    if student.shape[1] != teacher.shape[1]:
        student, teacher = student.mean(1, keepdim=True), teacher.mean(1, keepdim=True)
    m = mask.bool()
    pair = (m[:, None, :, None] & m[:, None, None, :]).expand_as(student)
    diff = (student.float() - teacher.float()).pow(2).masked_fill(~pair, 0.0)
    return diff.sum() / pair.sum().clamp(min=1)


def pkd_cls(
    students: list[torch.Tensor], teachers: list[torch.Tensor], proj: torch.nn.Module | None = None
) -> torch.Tensor:
    """Patient-KD: mean squared distance of L2-normalised [CLS] states, averaged over the mapped layers."""
    losses = []
    for s, t in zip(students, teachers, strict=True):
        s_cls = s[:, 0].float()
        if proj is not None:
            s_cls = proj(s_cls)
        s_n = F.normalize(s_cls, dim=-1)
        t_n = F.normalize(t[:, 0].float(), dim=-1)
        losses.append((s_n - t_n).pow(2).sum(-1).mean())
    return torch.stack(losses).mean()
