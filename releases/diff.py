"""Per-file unified diffs between two releases, on a work budget (pure: no database, no request).

difflib's matcher is quadratic in the worst case: it searches for the longest matching block,
then again on each side of it, and a file where every other line changed splits into thousands
of one-line blocks, each found by a search over nearly the whole file. Two 60,000-line files
like that took 48 s for one page. ``_BoundedMatcher`` charges every search to a ``DiffBudget``
before running it (its cost is known in advance from prefix sums, see there), so a page does at
most a bounded amount of matching; a file that would go past the budget, or whose diff would
be too long to read on a page, is shown as too large, and the page links both releases' files.
A typical release (a few files, a few changed lines) spends a few thousand units.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from itertools import accumulate, repeat

CONTEXT_LINES = 3
# About one unit per line compared: 8 million units take about a second on one slow core. A
# file may spend a million, the page four; a typical release spends well under 50,000.
WORK_PER_FILE = 1_000_000
WORK_PER_PAGE = 4_000_000
# Diff lines (context, added, removed) the page shows in all; a longer diff is not read on a page.
MAX_SHOWN_LINES = 10_000


class DiffTooLarge(Exception):
    """The file's diff would go past the budget."""


@dataclass
class DiffBudget:
    """What one page may spend on its diffs: matching work and lines shown."""

    work_per_file: int = WORK_PER_FILE
    work: int = WORK_PER_PAGE
    lines: int = MAX_SHOWN_LINES
    spent: int = 0
    file_spent: int = 0
    shown: int = 0

    def start_file(self) -> None:
        self.file_spent = 0

    def charge(self, units: int) -> None:
        """Spend ``units`` of work, or raise DiffTooLarge (nothing spent) when past a limit."""
        if self.file_spent + units > self.work_per_file or self.spent + units > self.work:
            raise DiffTooLarge
        self.file_spent += units
        self.spent += units


@dataclass
class DiffLine:
    kind: str  # "add", "del", "hunk", "" (context)
    text: str


@dataclass
class FileDiff:
    name: str
    status: str  # "added", "deleted", "changed", "unchanged"
    lines: list[DiffLine] = field(default_factory=list)
    added: int | None = 0  # None when too large to count
    removed: int | None = 0
    too_large: bool = False


class _BoundedMatcher(difflib.SequenceMatcher):
    """difflib's matcher that charges each longest-match search to ``budget`` before running it.

    A search over ``a[alo:ahi]`` visits each of those lines and, for each, the positions in ``b``
    of the same line up to ``bhi`` (lines in more than 1% of a long ``b`` are left out as
    popular, difflib's autojunk), so ``positions`` in ``b`` of ``a``'s lines, summed once into
    prefix sums, bound every search's cost in constant time.
    """

    def __init__(self, a: list[str], b: list[str], budget: DiffBudget):
        budget.charge(len(a) + len(b) + 1)  # indexing b, the prefix sums, the blocks' extensions
        super().__init__(None, a, b)
        # Positions in b of a[0:i], for every i (map/accumulate: no Python loop on the fast path).
        self._positions = list(accumulate(map(len, map(self.b2j.get, a, repeat((), len(a)))), initial=0))
        self._budget = budget

    def find_longest_match(self, alo=0, ahi=None, blo=0, bhi=None):
        ahi = len(self.a) if ahi is None else ahi
        bhi = len(self.b) if bhi is None else bhi
        self._budget.charge(self._positions[ahi] - self._positions[alo] + ahi - alo + 1)
        return super().find_longest_match(alo, ahi, blo, bhi)


def _range(start: int, stop: int) -> str:
    """A hunk header's range, as ``difflib.unified_diff`` writes it."""
    length = stop - start
    if length == 1:
        return str(start + 1)
    return f"{start + 1 if length else start},{length}"


def _file_diff(name: str, status: str, before: str, after: str, budget: DiffBudget) -> FileDiff:
    a, b = before.splitlines(), after.splitlines()
    budget.start_file()
    try:
        groups = list(_BoundedMatcher(a, b, budget).get_grouped_opcodes(CONTEXT_LINES))
    except DiffTooLarge:
        return FileDiff(name, status, added=None, removed=None, too_large=True)
    added = removed = context = 0
    for group in groups:
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                context += i2 - i1
            else:
                added, removed = added + j2 - j1, removed + i2 - i1
    count = len(groups) + added + removed + context
    if budget.shown + count > budget.lines:
        return FileDiff(name, status, added=added, removed=removed, too_large=True)
    budget.shown += count
    lines = []
    for group in groups:
        first, last = group[0], group[-1]
        lines.append(DiffLine("hunk", f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@"))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                lines.extend(DiffLine("", f" {line}") for line in a[i1:i2])
                continue
            lines.extend(DiffLine("del", f"-{line}") for line in a[i1:i2])
            lines.extend(DiffLine("add", f"+{line}") for line in b[j1:j2])
    return FileDiff(name, status, lines, added, removed)


def diff_files(old: dict[str, str], new: dict[str, str], *, budget: DiffBudget | None = None) -> list[FileDiff]:
    """Per-file unified diffs from ``old`` to ``new`` ({name: content}), in the new release's order.

    Lines as ``difflib.unified_diff`` writes them (3 lines of context), without the file headers.
    """
    budget = budget or DiffBudget()
    result = []
    for name in [*new, *(n for n in old if n not in new)]:
        before, after = old.get(name), new.get(name)
        status = "added" if before is None else "deleted" if after is None else (
            "unchanged" if before == after else "changed")
        if status == "unchanged":
            result.append(FileDiff(name, status))
        else:
            result.append(_file_diff(name, status, before or "", after or "", budget))
    return result
