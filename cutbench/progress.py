"""Progress bars, one kind everywhere (tqdm): on stderr, drawn only on a terminal and never in CI, so
logs and captured output hold no carriage-return noise."""

from __future__ import annotations

import os
import sys

from tqdm import tqdm


def bars_shown() -> bool:
    """Whether progress bars are drawn: stderr is a terminal and no CI variable is set."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def progress_bar(total: int | None, description: str, unit: str = "it", *, enabled: bool = True,
                 unit_scale: bool = False) -> tqdm:
    """A bar for ``total`` units (None: unknown), refreshed at most once a second; a no-op when not shown.

    Use it as a context manager or call ``close()``; ``update(count)`` after each piece of work.
    """
    return tqdm(total=total, desc=description, unit=unit, unit_scale=unit_scale, file=sys.stderr,
                disable=not (enabled and bars_shown()), mininterval=1.0, dynamic_ncols=True, leave=False)


__all__ = ["bars_shown", "progress_bar"]
