"""Where the capture file is: ``path``, else ``$SLM_AGENTS_DB``, else ``./slm_agents.db``.

Both the store (which writes the file) and the readers (:mod:`.query`, :mod:`.merge`, the CLI)
resolve paths here, so neither imports the other for it.

Example:
    >>> import os
    >>> resolve_path("/tmp/x.db").name
    'x.db'
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DEFAULT_PATH", "ENV_DB", "resolve_path"]

DEFAULT_PATH = "slm_agents.db"
ENV_DB = "SLM_AGENTS_DB"


def resolve_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The capture file: ``path``, else ``$SLM_AGENTS_DB``, else ``./slm_agents.db``."""
    chosen = path if path is not None else (os.environ.get(ENV_DB) or DEFAULT_PATH)
    return Path(chosen).expanduser().absolute()
