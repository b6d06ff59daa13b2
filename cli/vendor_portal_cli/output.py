"""What the commands print: a rich table for people, JSON for scripts (``--output json``)."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.table import Table
from rich.text import Text

stdout = Console(soft_wrap=True, markup=False)
stderr = Console(stderr=True, soft_wrap=True, markup=False)


def emit(output: str, data, columns: list[tuple[str, str]], rows: list[dict] | None = None) -> None:
    """Print ``data`` as JSON, or ``rows`` (default: ``data`` itself when it is a list, else
    ``[data]``) as a table of ``columns`` (title, key)."""
    if output == "json":
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        return
    if rows is None:
        rows = data if isinstance(data, list) else [data]
    table = Table(box=None, pad_edge=False, header_style="bold")
    for title, _ in columns:
        table.add_column(title, overflow="fold")
    for row in rows:
        # Text, not markup: names come from users ("Ops [/red] Team" must print as typed).
        table.add_row(*(Text(_cell(row.get(key))) for _, key in columns))
    stdout.print(table)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return str(value.get("name") or value.get("id") or json.dumps(value))
    return str(value)
