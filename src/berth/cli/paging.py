"""The paging options of the CLI's list commands.

Without options a list command follows the cursors and prints every item; `--limit N` or
`--cursor C` prints one page instead, and tells (on standard error, or as `next_cursor` in
`--json` output) the cursor of the next page.
"""

from __future__ import annotations

import argparse

from berth.cli.context import Context


def add_page_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, help="print one page of this many (1 to 500)")
    parser.add_argument("--cursor", help="print the page after this cursor (from a previous page)")


def one_page(args: argparse.Namespace) -> bool:
    """Whether the command asked for a single page."""
    return args.limit is not None or args.cursor is not None


def note_next_page(ctx: Context, next_cursor: str | None) -> None:
    """After a page printed as text: how to ask for the next one."""
    if next_cursor is not None and not ctx.json:
        ctx.err.write(f"more: --cursor {next_cursor}\n")
