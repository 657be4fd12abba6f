"""Outside text made safe to show: in a Markdown table, on a terminal line.

Names, device output and metrics fields come from files a user (or a device) wrote. In a Markdown
table a ``|`` starts a new column and a newline a new block; in a terminal a control character can
move the cursor or rewrite what was printed before. Both helpers keep every character visible and
the meaning intact, so nothing is dropped and a reader sees what the file held.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# what can end a cell or open raw HTML; emphasis marks only change a cell's look and stay
_MD_ESCAPES = {"\\": "\\\\", "|": "\\|", "<": "&lt;", ">": "&gt;", "&": "&amp;"}


def one_line(text: object, limit: int = 300) -> str:
    """``text`` on one line: control characters (newlines included) as escapes, at most ``limit`` characters."""
    s = str(text)
    out = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in s)
    return out if len(out) <= limit else out[: limit - 3] + "..."


def md_cell(text: object) -> str:
    """``text`` as one Markdown table cell: ``|``, backslashes and HTML escaped, on one line."""
    return "".join(_MD_ESCAPES.get(ch, ch) for ch in one_line(text, limit=10_000))


def md_row(cells: Iterable[object]) -> str:
    """A Markdown table row of ``cells``, each escaped."""
    return "| " + " | ".join(md_cell(c) for c in cells) + " |"


def md_table(head: Sequence[object], rows: Iterable[Iterable[object]]) -> list[str]:
    """A Markdown table's lines: the header, its rule, one row per item of ``rows``; every cell escaped."""
    return [md_row(head), "|" + "---|" * len(head), *(md_row(r) for r in rows)]
