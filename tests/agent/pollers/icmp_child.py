"""Runs ping_many in a child process (e.g. as another user inside a namespace) and prints the results.

    python -m tests.agent.pollers.icmp_child '[{"name": "a", "address": "127.0.0.1"}]' [COUNT]

Prints one JSON list: per result its device, errors, samples (metric -> value) and facts.
"""

from __future__ import annotations

import asyncio
import json
import sys

from weibao.agent.inventory.model import Device, IcmpSettings
from weibao.agent.pollers.icmp import ping_many
from weibao.core.inventory import Category, Kind


def main() -> None:
    specs = json.loads(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    settings = IcmpSettings(count=count, interval_ms=5, timeout_ms=500)
    devices = [Device(name=s["name"], address=s["address"], kind=Kind.SERVER, category=Category.BUSINESS,
                      icmp=settings) for s in specs]
    results = asyncio.run(ping_many(devices))
    print(json.dumps([{"device": r.device, "errors": [e.message for e in r.errors],
                       "retryable": [e.retryable for e in r.errors],
                       "samples": {s.metric: s.value for s in r.samples}, "facts": r.facts}
                      for r in results]))


if __name__ == "__main__":
    main()
