"""Captured text shown on a terminal or in a chart: escape codes made visible, never obeyed.

Shared by the CLI (every table and error line) and the report (chart labels), so one rule decides
what counts as unsafe.
"""

from __future__ import annotations

__all__ = ["safe_text"]

# Control characters a terminal would act on (C0 but newline/tab, DEL, C1) and the bidi
# overrides that reorder text: captured text is printed with them made visible, never obeyed.
_UNSAFE = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)]}
_UNSAFE.update({c: f"\\u{c:04x}" for c in [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]})


def safe_text(text: str) -> str:
    r"""``text`` with terminal escape codes and bidi overrides shown as ``\x1b``-style escapes.

    Example:
        >>> safe_text("red \x1b[31mtext")
        'red \\x1b[31mtext'
    """
    return text.translate(_UNSAFE)
