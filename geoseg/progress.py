"""The progress callback the library calls; the CLI turns it into a bar.

The library never prints: long operations take ``progress: Progress | None`` and call it
with ``(done, total, postfix)`` as work completes.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def __call__(self, done: int, total: int, postfix: str = "") -> None: ...


def report(progress: Progress | None, done: int, total: int, postfix: str = "") -> None:
    """Call ``progress`` if there is one."""
    if progress is not None:
        progress(done, total, postfix)
