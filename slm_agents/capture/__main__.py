"""``python -m slm_agents.capture [docs/capture.md]``: regenerate the schema section of the docs."""

from __future__ import annotations

import sys

from .schema import update_docs

if __name__ == "__main__":
    changed = update_docs(sys.argv[1] if len(sys.argv) > 1 else "docs/capture.md")
    print("updated" if changed else "up to date")
