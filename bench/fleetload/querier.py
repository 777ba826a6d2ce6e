"""A status-query flooder: ``python bench/fleetload/querier.py ENDPOINT RATE``, a zenoh client of the router at
ENDPOINT sending RATE ``**/edgenode/status/**`` queries a second (what ``edgenode status`` sends) while on.

Commands on stdin, one a line: ``on`` starts the flood, ``control`` starts the same flood on a key nobody
answers (``**/edgenode/nobody/**``: the flooder and the router work alike, the node gets nothing), ``off``
stops either and prints one JSON line (queries sent, seconds), ``quit`` ends. Queries are fired and
forgotten (a one-slot ring takes their replies, no Python runs for them): a Python callback per query
would cap one flooder near 2,000 queries a second on these machines.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import zenoh

SELECTOR = "**/edgenode/status/**"
CONTROL = "**/edgenode/nobody/**"
BATCH_SECONDS = 0.005  # queries go out in small batches, evenly spread


def main(endpoint: str, rate: float) -> int:
    config = zenoh.Config()
    config.insert_json5("mode", '"client"')
    config.insert_json5("connect/endpoints", json.dumps([endpoint]))
    config.insert_json5("scouting/multicast/enabled", "false")
    session = zenoh.open(config)
    lock = threading.Lock()
    counts = {"sent": 0}
    flooding = threading.Event()
    done = threading.Event()

    queriers = {"on": session.declare_querier(SELECTOR, timeout=1.0),
                 "control": session.declare_querier(CONTROL, timeout=1.0)}
    target = ["on"]

    def flood() -> None:
        while not done.is_set():
            if not flooding.wait(0.1):
                continue
            querier = queriers[target[0]]
            started, sent = time.monotonic(), 0
            while flooding.is_set():
                due = int((time.monotonic() - started) * rate)
                batch = min(due - sent, int(rate * BATCH_SECONDS * 4) + 1)  # behind: skip, never burst
                for _ in range(batch):
                    querier.get(zenoh.handlers.RingChannel(1))
                with lock:
                    counts["sent"] += batch
                sent = due
                time.sleep(BATCH_SECONDS)

    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    print("ready", flush=True)
    began = time.monotonic()
    for line in sys.stdin:
        command = line.strip()
        if command in queriers:
            target[0] = command
            with lock:
                counts.update(sent=0)
            began = time.monotonic()
            flooding.set()
        elif command == "off":
            flooding.clear()
            seconds = time.monotonic() - began
            with lock:
                print(json.dumps({**counts, "seconds": round(seconds, 3)}), flush=True)
        elif command == "quit":
            break
    done.set()
    flooding.clear()
    thread.join(2)
    for querier in queriers.values():
        querier.undeclare()
    session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], float(sys.argv[2])))
