"""Zenoh adapter: session from layered config, CDR publishers, subscriptions bridged into asyncio,
and the fleet status: a liveliness token with a status queryable, and the survey ``edgenode status`` runs.

zenoh-python has no asyncio API. Subscriber callbacks run on zenoh's threads; they copy the
payload and hand it to the event loop with ``call_soon_threadsafe``, so nothing here blocks
the loop and nothing on zenoh's threads touches loop state.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import zenoh

from edgenode.config import ZenohSettings
from edgenode.core.status import STATUS_SELECTOR, QueryBudget, status_key
from edgenode.logs import get_logger

T = TypeVar("T")
CONNECT_CHECK_SECONDS = 2.0  # first look at whether the --connect endpoints answer (then 2x, up to a minute)

STATUS_RATE = 50.0  # status replies a second, at most, whatever the query rate; the rest are refused
STATUS_BURST = 25
MAX_SURVEY_REPLIES = 10_000


class ZenohConfigError(ValueError):
    """A zenoh config file, flag or override that zenoh rejects."""


class ZenohUnreachable(ZenohConfigError):
    """In client mode, no router answers at the ``--connect`` endpoints (yet)."""


_RUST_LOCATION = re.compile(r"\s+at /\S+\.rs:\d+\.?")
_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_SERDE_MESSAGE = re.compile(r"(?:Json5Err\()?(?:JSON error: )?Message \{ msg: " + _QUOTED +
                            r", location: (?:Some\(Location \{ line: (\d+), column: (\d+) \}\)|None) \}\)?")
_PEST_MESSAGE = re.compile(r"-->\s*(\d+):(\d+).*?\n\s*=\s*([^\n]+)", re.S)
_RUST_STRING = re.compile(r"Str\(" + _QUOTED + r"\)")


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], text)


def _where(line: str | None, column: str | None) -> str:
    return f" (line {line}, column {column})" if line else ""


def _one_line(exc: BaseException) -> str:
    """zenoh's message as one readable line: no Rust source locations, no ``Json5Err(Message { ... })``
    wrapping, a JSON5 syntax error as its reason and position."""
    text = _RUST_LOCATION.sub("", str(exc))
    text = _RUST_STRING.sub(lambda m: _unescape(m[1]), text)
    serde = _SERDE_MESSAGE.search(text)
    if serde:
        message = _unescape(serde[1])
        pest = _PEST_MESSAGE.search(message)
        message = f"{pest[3].strip()}{_where(pest[1], pest[2])}" if pest else f"{message}{_where(serde[2], serde[3])}"
        text = text[:serde.start()] + message + text[serde.end():]
    else:
        pest = _PEST_MESSAGE.search(text)
        if pest:
            text = f"{pest[3].strip()}{_where(pest[1], pest[2])}"
    return " ".join(text.split()).rstrip(".") or type(exc).__name__


def init_zenoh_logging(directives: str) -> None:
    """Turn on zenoh's own log lines (its Rust tracing, printed on stdout) for ``directives``.

    ``directives`` are RUST_LOG's zenoh targets (``zenoh=warn,zenoh::net=debug``): zenoh reads
    its filter from RUST_LOG only, so the variable holds just those while zenoh reads it, and the
    process's own value is put back. Once per process (later calls change nothing).
    """
    start = getattr(zenoh, "try_init_log_from_env", None)
    if start is None:  # pragma: no cover - a zenoh without it
        return
    previous = os.environ.get("RUST_LOG")
    os.environ["RUST_LOG"] = directives
    try:
        start()
    finally:
        if previous is None:
            del os.environ["RUST_LOG"]
        else:
            os.environ["RUST_LOG"] = previous


def build_zenoh_config(settings: ZenohSettings) -> zenoh.Config:
    """Layer the zenoh config: file (or EdgeFirst defaults), then flags, then ``--cfg`` overrides."""
    config: zenoh.Config
    if settings.config_file is not None:
        try:
            config = zenoh.Config.from_file(str(settings.config_file))
        except Exception as exc:
            raise ZenohConfigError(f"--zenoh-config {settings.config_file}: {_one_line(exc)}") from None
    else:
        config = zenoh.Config()
        _insert(config, "mode", json.dumps("peer"), "default mode")
        _insert(config, "scouting/multicast/interface", json.dumps(settings.multicast_interface), "default")
    if settings.mode is not None:
        _insert(config, "mode", json.dumps(settings.mode), "--mode")
    if settings.connect:
        _insert(config, "connect/endpoints", json.dumps(list(settings.connect)), "--connect")
    if settings.listen:
        _insert(config, "listen/endpoints", json.dumps(list(settings.listen)), "--listen")
    if not settings.multicast_scouting:
        _insert(config, "scouting/multicast/enabled", "false", "--no-multicast-scouting")
    # The node has no use for zenoh's shared memory, and each peer that sends a large payload through it
    # leaves its segments (17 MiB and two fds per peer) mapped in the node: off unless asked for.
    _insert(config, "transport/shared_memory/enabled", json.dumps(settings.shared_memory), "--zenoh-shared-memory")
    for key, value in settings.overrides:
        _insert(config, key, value, f"--cfg {key}")
    _bound_status_queries(config)
    return config


def _bound_status_queries(config: zenoh.Config) -> None:
    """Add an ingress rule that drops status queries beyond STATUS_RATE a second inside zenoh, before any
    Python runs for them (kept beside the config's own downsampling rules)."""
    try:
        rules = json.loads(config.get_json("downsampling")) or []
    except Exception:
        rules = []
    rules.append({"id": "edgenode-status-queries", "flows": ["ingress"], "messages": ["query"],
                  "rules": [{"key_expr": STATUS_SELECTOR, "freq": STATUS_RATE}]})
    _insert(config, "downsampling", json.dumps(rules), "status query bound")


def _insert(config: zenoh.Config, key: str, value: str, origin: str) -> None:
    try:
        config.insert_json5(key, value)
    except Exception as exc:
        raise ZenohConfigError(f"{origin}: zenoh rejects {key}={value}: {_one_line(exc)}") from None


def key_matcher(patterns: Sequence[str]) -> Callable[[str], bool]:
    """A test for keys that any of ``patterns`` (zenoh key expressions, ``*`` and ``**``) includes.

    Raises :class:`ZenohConfigError` naming a malformed pattern.
    """
    expressions = []
    for pattern in patterns:
        try:
            expressions.append(zenoh.KeyExpr(pattern))
        except Exception as exc:
            raise ZenohConfigError(f"{pattern!r} is not a zenoh key expression: {_one_line(exc)}") from None

    def matches(key: str) -> bool:
        try:
            target = zenoh.KeyExpr(key)
        except Exception:
            return False
        return any(expression.includes(target) for expression in expressions)

    return matches


@dataclass(frozen=True)
class Received:
    """One sample: its payload bytes, zenoh encoding text, local arrival time (monotonic ns) and key.

    ``oversize`` is the size of a payload that was larger than the subscription allows; its
    bytes were never copied (``payload`` is empty). ``key`` is the sample's own key expression
    (a subscription on a wildcard such as ``**`` receives many).
    """

    payload: bytes
    encoding: str
    arrived_ns: int
    oversize: int = 0
    key: str = ""


class LatestSlot(Generic[T]):
    """Keeps only the newest item; counts the ones it replaced. Loop-side only."""

    def __init__(self) -> None:
        self._item: T | None = None
        self._ready = asyncio.Event()
        self.received = 0
        self.dropped = 0
        self.last_put = 0.0  # time.monotonic() of the newest item's arrival (0 before the first)

    def put(self, item: T) -> None:
        """Store ``item``, replacing (and counting) an unread one."""
        if self._item is not None:
            self.dropped += 1
        self._item = item
        self.received += 1
        self.last_put = time.monotonic()
        self._ready.set()

    @property
    def pending(self) -> bool:
        """Whether an item waits unread."""
        return self._item is not None

    async def wait(self) -> None:
        """Until an item waits (at once when one does)."""
        await self._ready.wait()

    def take(self) -> T | None:
        """The newest item, or None; the slot is empty afterwards."""
        item, self._item = self._item, None
        self._ready.clear()
        return item

    async def get(self, timeout: float | None = None) -> T | None:
        """Wait up to ``timeout`` seconds for an item; None on timeout.

        Not ``asyncio.wait_for``: before Python 3.12 it swallows a cancellation that lands as
        the item arrives, and a cancelled reader (the heartbeat, once the model is loaded) would
        carry on as if nothing happened.
        """
        if self._item is None:
            waiter = asyncio.ensure_future(self._ready.wait())
            try:
                done, _ = await asyncio.wait({waiter}, timeout=timeout)
            finally:
                waiter.cancel()
            if not done:
                return None
        return self.take()


class Publication:
    """A declared publisher that sends CDR bytes with the EdgeFirst encoding (``application/cdr;<schema>``)."""

    def __init__(self, publisher: zenoh.Publisher, key: str, schema: str) -> None:
        self._publisher = publisher
        self.key = key
        self.schema = schema
        self.sent = 0

    def put(self, payload: bytes) -> None:
        """Send one message (non-blocking under zenoh's default DROP congestion control)."""
        self._publisher.put(payload)
        self.sent += 1

    def close(self) -> None:
        """Undeclare the publisher."""
        try:
            self._publisher.undeclare()
        except Exception:
            pass


def _addresses(endpoint: str) -> set[str]:
    """The locators a link to ``endpoint`` may report: itself without metadata, and its host resolved."""
    locator = re.split(r"[?#]", endpoint, maxsplit=1)[0]
    found = {locator}
    protocol, _, address = locator.partition("/")
    host, _, port = address.rpartition(":")
    if host and port.isdigit() and not host.startswith("["):
        try:
            for *_, sockaddr in socket.getaddrinfo(host, int(port), proto=socket.IPPROTO_TCP):
                ip = str(sockaddr[0])
                found.add(f"{protocol}/{'[' + ip + ']' if ':' in ip else ip}:{port}")
        except (OSError, UnicodeError):
            pass
    return found


class ZenohBus:
    """An open zenoh session with helpers for the node's publishers and subscriptions.

    With ``connect`` endpoints it watches them: zenoh retries an endpoint nobody answers at
    silently and forever, so one warning line says so per endpoint (and one line when it answers).
    """

    def __init__(self, session: zenoh.Session, namespace: str = "", connect: tuple[str, ...] = ()) -> None:
        self.session = session
        self.namespace = namespace  # zenoh's ``namespace`` setting: the prefix of every key on the wire
        self._closables: list[Callable[[], None]] = []
        self._closed = threading.Event()
        if connect:
            threading.Thread(target=self._watch_connect, args=(connect,), name="edgenode-zenoh-connect",
                             daemon=True).start()

    def _linked(self) -> set[str] | None:
        """Remote locators of the open links (None: this zenoh has no ``links()``, only whether any peer is up)."""
        info = self.session.info
        if not hasattr(info, "links"):
            return None if (info.peers_zid() or info.routers_zid()) else set()
        return {str(link.dst) for link in info.links()}

    def _watch_connect(self, endpoints: tuple[str, ...]) -> None:
        addresses = {endpoint: _addresses(endpoint) for endpoint in endpoints}
        down: set[str] = set()
        delay = CONNECT_CHECK_SECONDS
        while not self._closed.wait(delay):
            try:
                linked = self._linked()
            except Exception:  # the session is closing
                return
            for endpoint in endpoints:
                answers = linked is None or bool(addresses[endpoint] & linked)
                if not answers and endpoint not in down:
                    down.add(endpoint)
                    get_logger("edgenode.zenoh").warning(
                        f"--connect {endpoint}: no zenoh peer answers there yet; zenoh keeps trying")
                elif answers and endpoint in down:
                    down.discard(endpoint)
                    get_logger("edgenode.zenoh").info(f"--connect {endpoint}: connected")
            delay = min(delay * 2, 60.0)

    @classmethod
    def open(cls, settings: ZenohSettings) -> ZenohBus:
        """Open a session; raises ZenohConfigError with zenoh's reason when it cannot."""
        config = build_zenoh_config(settings)
        try:
            return cls(zenoh.open(config), namespace=configured_namespace(config), connect=settings.connect)
        except Exception as exc:
            message = _one_line(exc)
            if message.startswith("Unable to connect to any of"):
                where = ", ".join(settings.connect) or "the configured endpoints"
                raise ZenohUnreachable(f"no zenoh router answers at {where}") from None
            raise ZenohConfigError(f"cannot open zenoh session: {message}") from None

    @classmethod
    def open_when_reachable(cls, settings: ZenohSettings, stopping: Callable[[], bool],
                            waiting: Callable[[str], None], *, first_delay: float = 0.5,
                            max_delay: float = 5.0) -> ZenohBus | None:
        """:meth:`open`, retrying while the router is unreachable (client mode); None once ``stopping()``.

        A zenoh client refuses to open without a router, while a running client reconnects by
        itself when its router restarts. Retrying here makes start-up order not matter: under
        systemd, exiting instead would soon hit the unit's start limit and stop for good.
        ``waiting`` is told once, with the reason; blocking: run it off the event loop.
        """
        delay = first_delay
        told = False
        while True:
            try:
                return cls.open(settings)
            except ZenohUnreachable as exc:
                if not told:
                    waiting(f"{exc}; retrying until one does")
                    told = True
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline:
                if stopping():
                    return None
                time.sleep(0.05)
            delay = min(delay * 2, max_delay)

    def publication(self, key: str, schema: str) -> Publication:
        """Declare a publisher on ``key`` carrying ``schema`` in its encoding."""
        encoding = zenoh.Encoding.APPLICATION_CDR.with_schema(schema)
        publication = Publication(self.session.declare_publisher(key, encoding=encoding), key, schema)
        self._closables.append(publication.close)
        return publication

    def subscribe(self, key: str, deliver: Callable[[Received], None],
                  loop: asyncio.AbstractEventLoop, *, max_bytes: int | None = None) -> Callable[[], None]:
        """Call ``deliver`` on ``loop`` for each sample on ``key``; returns a function that unsubscribes.

        A payload larger than ``max_bytes`` is not copied: it arrives as an empty ``Received``
        with ``oversize`` set, so a flood of huge messages cannot make the node hold them.
        """

        def on_sample(sample: zenoh.Sample) -> None:
            size = len(sample.payload)
            key = str(sample.key_expr)
            if max_bytes is not None and size > max_bytes:
                received = Received(b"", str(sample.encoding), time.monotonic_ns(), oversize=size, key=key)
            else:
                received = Received(sample.payload.to_bytes(), str(sample.encoding), time.monotonic_ns(), key=key)
            try:
                loop.call_soon_threadsafe(deliver, received)
            except RuntimeError:
                pass  # the loop is closed: the node is shutting down

        subscriber = self.session.declare_subscriber(key, on_sample)

        def close() -> None:
            try:
                subscriber.undeclare()
            except Exception:
                pass

        self._closables.append(close)
        return close

    def subscribe_latest(self, key: str, loop: asyncio.AbstractEventLoop, *,
                         max_bytes: int | None = None) -> LatestSlot[Received]:
        """Subscribe to ``key`` keeping only the newest sample."""
        slot: LatestSlot[Received] = LatestSlot()
        self.subscribe(key, slot.put, loop, max_bytes=max_bytes)
        return slot

    # -- fleet status ------------------------------------------------------------------------
    @property
    def zid(self) -> str:
        """This session's zenoh id (hex)."""
        return str(self.session.info.zid())

    def announce(self, kind: str, answer: Callable[[], bytes], *, rate: float = STATUS_RATE,
                 burst: int = STATUS_BURST) -> Announcement:
        """Declare a liveliness token and a status queryable on ``edgenode/status/<kind>/<zid>``, answering
        each query with ``answer()`` (JSON bytes; it must be quick: a snapshot, never work), at most
        ``rate`` replies a second (bursts of ``burst``), refusing the rest at once; undeclared with the bus."""
        announcement = Announcement(self.session, status_key(kind, self.zid), answer, rate=rate, burst=burst)
        self._closables.append(announcement.close)
        return announcement

    def survey(self, selector: str, timeout: float, *, max_bytes: int, max_replies: int = MAX_SURVEY_REPLIES
               ) -> Survey:
        """Ask every queryable matching ``selector`` and, at the same time, every liveliness token matching it;
        returns once both queries finish (every match answered) or ``timeout`` seconds pass. Replies over
        ``max_bytes`` are kept as problems without their payload; at most ``max_replies`` of each are kept."""
        survey = Survey()
        lock = threading.Lock()
        replies_done, tokens_done = threading.Event(), threading.Event()

        def on_reply(reply: zenoh.Reply) -> None:
            sample = reply.ok
            if sample is None:
                error = reply.err
                text = error.payload.to_bytes()[:200].decode(errors="replace") if error is not None else "?"
                answer = Answer("", b"", f"error reply: {text}")
            elif len(sample.payload) > max_bytes:
                answer = Answer(str(sample.key_expr), b"", f"a {len(sample.payload)}-byte reply (at most {max_bytes})")
            else:
                answer = Answer(str(sample.key_expr), sample.payload.to_bytes())
            with lock:
                if len(survey.answers) < max_replies:
                    survey.answers.append(answer)
                else:
                    survey.left_out += 1

        def on_token(reply: zenoh.Reply) -> None:
            sample = reply.ok
            with lock:
                if sample is not None and len(survey.alive) < max_replies:
                    survey.alive.append(str(sample.key_expr))

        self.session.get(selector, zenoh.handlers.Callback(on_reply, replies_done.set),
                         target=zenoh.QueryTarget.ALL, consolidation=zenoh.ConsolidationMode.NONE, timeout=timeout)
        self.session.liveliness().get(selector, zenoh.handlers.Callback(on_token, tokens_done.set), timeout=timeout)
        deadline = time.monotonic() + timeout + 0.5  # zenoh ends both itself at ``timeout``
        for done in (replies_done, tokens_done):
            done.wait(max(deadline - time.monotonic(), 0.0))
        with lock:
            return Survey(list(survey.answers), list(survey.alive), survey.left_out)

    def close(self) -> None:
        """Undeclare everything and close the session."""
        self._closed.set()
        for close in reversed(self._closables):
            close()
        self._closables.clear()
        try:
            self.session.close()
        except Exception:
            pass


def configured_namespace(config: zenoh.Config) -> str:
    """The ``namespace`` a zenoh config sets ("" when none)."""
    try:
        value = json.loads(config.get_json("namespace"))
    except Exception:
        return ""
    return value if isinstance(value, str) else ""



class Announcement:
    """A liveliness token and a status queryable on one key, while the process lives.

    Queries are bounded twice. First inside zenoh: the session's config drops status queries
    beyond STATUS_RATE a second at ingress (:func:`build_zenoh_config`), before any Python runs
    for them. Then each query that gets through is answered, or refused, at once in a short
    callback: when the :class:`QueryBudget` allows one more reply, with ``answer()``'s ready bytes,
    otherwise not at all (zenoh closes it unanswered). No query is left waiting: measured on
    zenoh 1.10, queries held pending in a process (a ring read at a paced rate) cost the whole
    process its CPU under a flood, while answering or dropping each at once does not.
    """

    def __init__(self, session: zenoh.Session, key: str, answer: Callable[[], bytes], *, rate: float = STATUS_RATE,
                 burst: int = STATUS_BURST) -> None:
        self.key = key
        self.answered = 0
        self.refused = 0
        self.rate = rate
        self._answer = answer
        self._budget = QueryBudget(rate, burst, time.monotonic())
        self._lock = threading.Lock()
        # The queryable first: a token seen before its queryable is declared would invite a query it misses.
        self._queryable = session.declare_queryable(key, self._on_query)
        try:
            self._token = session.liveliness().declare_token(key)
        except Exception:
            self._queryable.undeclare()
            raise

    def _on_query(self, query: zenoh.Query) -> None:
        with self._lock:
            allowed = self._budget.take(time.monotonic())
            if allowed:
                self.answered += 1
            else:
                self.refused += 1
        if allowed:
            try:
                query.reply(self.key, self._answer(), encoding=zenoh.Encoding.APPLICATION_JSON)
            except Exception:
                pass  # the querier gave up, or the session is closing

    def close(self) -> None:
        """Withdraw the token, then the queryable."""
        try:
            self._token.undeclare()
        except Exception:
            pass
        try:
            self._queryable.undeclare()
        except Exception:
            pass


@dataclass(frozen=True)
class Answer:
    """One reply to a status query: its key and payload, or the problem with it (payload empty)."""

    key: str
    payload: bytes
    problem: str = ""


@dataclass
class Survey:
    """What a status survey found: the replies, the keys with a live token, replies left out over the bound."""

    answers: list[Answer] = field(default_factory=list)
    alive: list[str] = field(default_factory=list)
    left_out: int = 0
