"""What ``edgenode status`` shows: one entry per node or camera found, as a table or as JSON. Pure.

An entry is a status key seen as a live liveliness token, as a reply, or both: a live token
without a reply is a process that is up but not answering (busy past its reply budget, or
wedged); a reply that is not a status document is shown as a bad reply, never trusted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgenode.core.status import StatusError, StatusKey, decode_status, parse_status_key

NOT_ANSWERING = "not answering"
COLUMNS = ("NAME", "KIND", "STATE", "MODEL", "FPS", "LATENCY", "DROPS", "UPTIME")
KIND_ORDER = {"camera": 0, "node": 1}


@dataclass(frozen=True)
class Entry:
    """One process found: its key, whether its token is live, its status document (None without a good
    reply) and what went wrong ("" when it answered)."""

    key: StatusKey
    alive: bool
    status: dict[str, Any] | None
    problem: str = ""

    @property
    def answered(self) -> bool:
        return self.status is not None


def entries(replies: Iterable[tuple[str, bytes, str]], alive: Iterable[str]) -> list[Entry]:
    """The processes behind ``replies`` ((key, payload, problem) each) and live token keys, sorted by
    namespace, kind (cameras first), host; keys that are not status keys are ignored."""
    live = {key for key in alive if parse_status_key(key) is not None}
    found: dict[str, Entry] = {}
    for key, payload, trouble in replies:
        parsed = parse_status_key(key)
        if parsed is None or (key in found and found[key].answered):
            continue
        status: dict[str, Any] | None = None
        problem = f"bad reply: {trouble}" if trouble else ""
        if not trouble:
            try:
                status = decode_status(payload)
            except StatusError as exc:
                problem = f"bad reply: {exc}"
        found[key] = Entry(parsed, key in live, status, problem)
    for key in live - set(found):
        parsed = parse_status_key(key)
        assert parsed is not None
        found[key] = Entry(parsed, True, None, NOT_ANSWERING)
    return sorted(found.values(), key=lambda e: (e.key.namespace, KIND_ORDER.get(e.key.kind, 9), _host(e),
                                                   e.key.instance))


def _get(document: Mapping[str, Any] | None, *path: str) -> Any:
    """``document[path[0]][path[1]]...``, or None where any step is missing or not a mapping."""
    value: Any = document
    for step in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(step)
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _text(value: Any, limit: int = 40) -> str:
    """A value from the network, printable on one line and at most ``limit`` characters."""
    text = "".join(c if c.isprintable() else "?" for c in str(value))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _namespace(entry: Entry) -> str:
    """The entry's namespace: the key's prefix, else (asked from inside a namespace, where zenoh strips it)
    the one its status reports."""
    reported = _get(entry.status, "identity", "namespace")
    return entry.key.namespace or (reported if isinstance(reported, str) else "")


def _host(entry: Entry) -> str:
    host = _get(entry.status, "identity", "host")
    return _text(host) if isinstance(host, str) and host else entry.key.instance[:8]


def duration(seconds: float | None) -> str:
    """``seconds`` as 42s, 12m05s, 3h02m or 4d07h; "-" when unknown."""
    if seconds is None or seconds < 0:
        return "-"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _model(entry: Entry) -> str:
    status = entry.status
    if entry.key.kind == "camera":
        streams = _get(status, "cameras")
        first = streams[0] if isinstance(streams, list) and streams and isinstance(streams[0], Mapping) else {}
        fmt, size = first.get("format"), first.get("size")
        shown = [_text(fmt, 8)] if isinstance(fmt, str) else []
        if isinstance(size, list) and len(size) == 2 and all(_number(v) is not None for v in size):
            shown.append(f"{int(size[0])}x{int(size[1])}")
        return " ".join(shown) or "-"
    name = _get(status, "model", "name")
    if isinstance(name, str) and name:
        return _text(name)
    file = _get(status, "model", "file")
    return _text(str(file).rsplit("/", 1)[-1]) if isinstance(file, str) and file else "-"


def _drops(entry: Entry) -> str:
    counters = _get(entry.status, "counters")
    if entry.key.kind == "camera":
        late = _number(_get(counters, "late"))
        return f"{late:.0f} late" if late is not None else "-"
    parts = [_number(_get(counters, "dropped")), _number(_get(counters, "skipped_total"))]
    known = [part for part in parts if part is not None]
    return f"{sum(known):.0f}" if known else "-"


def row(entry: Entry, name: str) -> tuple[str, ...]:
    """The table row of ``entry``, named ``name``."""
    kind = _text(entry.key.kind, 8)
    if entry.status is None:
        state = NOT_ANSWERING if entry.problem == NOT_ANSWERING else "bad reply"
        return name, kind, state, "-", "-", "-", "-", "-"
    state = _get(entry.status, "state")
    fps = _number(_get(entry.status, "window", "fps"))
    latency = _number(_get(entry.status, "window", "latency_ms", "mean"))
    return (name, kind, _text(state, 20) if isinstance(state, str) else "?", _model(entry),
            f"{fps:.1f}" if fps is not None else "-", f"{latency:.1f} ms" if latency is not None else "-",
            _drops(entry), duration(_number(_get(entry.status, "uptime_s"))))


def names(found: Sequence[Entry]) -> list[str]:
    """Each entry's name: ``namespace/host`` (``host`` without a namespace), with ``:pid`` added where two of
    a kind would read the same."""
    plain = [f"{_text(space)}/{_host(e)}" if (space := _namespace(e)) else _host(e) for e in found]
    pairs = [(name, entry.key.kind) for name, entry in zip(plain, found, strict=True)]
    counts = {pair: pairs.count(pair) for pair in pairs}
    shown = []
    for entry, name in zip(found, plain, strict=True):
        pid = _number(_get(entry.status, "identity", "pid"))
        suffix = f":{pid:.0f}" if pid is not None else f":{entry.key.instance[:8]}"
        shown.append(name + suffix if counts[(name, entry.key.kind)] > 1 else name)
    return shown


def render(found: Sequence[Entry]) -> str:
    """The table: a header, one row per entry, and a line counting who answered."""
    rows = [COLUMNS, *(row(entry, name) for entry, name in zip(found, names(found), strict=True))]
    widths = [max(len(r[column]) for r in rows) for column in range(len(COLUMNS))]
    right = {4, 5, 6, 7}  # numbers line up on the right
    lines = ["  ".join(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(r))
             .rstrip() for r in rows]
    if not found:
        return "no edgenode node or camera found (none reachable with these zenoh settings)"
    answered = sum(entry.answered for entry in found)
    silent = sum(entry.problem == NOT_ANSWERING for entry in found)
    bad = len(found) - answered - silent
    summary = f"{answered} answered" + (f", {silent} not answering" if silent else "") + (
        f", {bad} bad replies" if bad else "")
    return "\n".join([*lines, summary])


def document(found: Sequence[Entry]) -> dict[str, Any]:
    """The JSON ``edgenode status --json`` prints: counts, then one object per entry with its status."""
    return {"answered": sum(entry.answered for entry in found),
            "not_answering": sum(entry.problem == NOT_ANSWERING for entry in found),
            "entries": [{"key": entry.key.key, "namespace": entry.key.namespace, "kind": entry.key.kind,
                         "id": entry.key.instance, "alive": entry.alive, "answered": entry.answered,
                         "problem": entry.problem or None, "status": entry.status} for entry in found]}
