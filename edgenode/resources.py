"""Where the data shipped with edgenode lives (message definitions, delegate descriptors).

An installed wheel carries the top-level ``schemas/`` and ``delegates/`` folders as
``edgenode/_data/<name>``; a source checkout (or editable install) reads them in place.
"""

from __future__ import annotations

from pathlib import Path

from edgenode.messages.definitions import MessageDefinition, parse_message

_PACKAGE_DIR = Path(__file__).resolve().parent
DATA_FOLDERS = ("schemas", "delegates")


def data_path(name: str) -> Path:
    """Folder of shipped data ``name`` (``schemas`` or ``delegates``)."""
    if name not in DATA_FOLDERS:
        raise ValueError(f"unknown data folder {name!r}; expected one of {', '.join(DATA_FOLDERS)}")
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"edgenode data folder {name!r} is missing: reinstall edgenode")


def message_texts() -> dict[str, str]:
    """The text of every shipped ``<package>/msg/<Name>.msg``, keyed ``package/msg/Name``."""
    root = data_path("schemas")
    return {f"{path.parent.parent.name}/msg/{path.stem}": path.read_text(encoding="utf-8")
            for path in sorted(root.glob("*/msg/*.msg"))}


def message_definitions() -> dict[str, MessageDefinition]:
    """Every shipped ``<package>/msg/<Name>.msg``, parsed, keyed ``package/msg/Name``."""
    return {name: parse_message(name, text) for name, text in message_texts().items()}
