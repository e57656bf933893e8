"""Reading scalars and table columns from one device: batched GETs and a many-columns-per-request GETBULK walk."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from weibao.agent.errors import DeviceTimeout
from weibao.agent.pollers.snmp.transport import Missing, Oid, SnmpErrorStatus, SnmpTransport, Target, Value

log = logging.getLogger(__name__)

GET_BATCH = 24  # varbinds per GET: small enough for any agent's message size
COLUMNS_PER_BULK = 16  # columns walked side by side in one GETBULK
VARBIND_BUDGET = 256  # repetitions x columns asked per GETBULK
MAX_ROWS = 5000  # per column: a broken agent must not keep us walking forever

Rows = dict[tuple[int, ...], dict[Oid, Value]]  # index -> column OID -> value


async def get_scalars(transport: SnmpTransport, target: Target, oids: Sequence[Oid]) -> dict[Oid, Value]:
    """Values of the given instance OIDs; what the agent lacks comes back as ``Missing``.

    SNMPv1 answers a GET with noSuchName for the whole request when one OID is unknown:
    the offending OID is then dropped and the rest asked again.
    """
    out: dict[Oid, Value] = {}
    todo = list(dict.fromkeys(oids))
    for start in range(0, len(todo), GET_BATCH):
        batch = todo[start:start + GET_BATCH]
        while batch:
            try:
                for oid, value in await transport.get(target, batch):
                    out[oid] = value
                break
            except SnmpErrorStatus as exc:
                if exc.status == 2 and 1 <= exc.index <= len(batch):  # noSuchName
                    out[batch[exc.index - 1]] = Missing("noSuchName")
                    batch = batch[:exc.index - 1] + batch[exc.index:]
                    continue
                if exc.status == 1 and len(batch) > 1:  # tooBig: ask in halves
                    half = len(batch) // 2
                    out.update(await get_scalars(transport, target, batch[:half]))
                    batch = batch[half:]
                    continue
                raise
    return out


def _under(oid: Oid, prefix: Oid) -> bool:
    return len(oid) > len(prefix) and oid[:len(prefix)] == prefix


async def walk_columns(transport: SnmpTransport, target: Target, columns: Sequence[Oid], *,
                       max_repetitions: int, use_bulk: bool, rows_hint: int | None = None) -> Rows:
    """Every row of the given columns, walked side by side; ``use_bulk`` False walks with GETNEXT (v1).

    ``rows_hint`` is how many rows the longest column had last time: asking for one repetition more
    ends most walks in one request without making the agent encode (and us decode) a long overshoot
    into the following columns.
    """
    rows: Rows = {}
    unique = list(dict.fromkeys(columns))
    for start in range(0, len(unique), COLUMNS_PER_BULK):
        group = unique[start:start + COLUMNS_PER_BULK]
        reps = 0
        if use_bulk:
            reps = max(1, min(max_repetitions, VARBIND_BUDGET // len(group)))
            if rows_hint is not None:
                reps = max(2, min(reps, rows_hint + 1))
        await _walk_group(transport, target, group, rows, reps)
    return rows


def longest_column(rows: Rows) -> int:
    """The number of rows of the longest column walked (the next walk's ``rows_hint``)."""
    counts: dict[Oid, int] = {}
    for cols in rows.values():
        for col in cols:
            counts[col] = counts.get(col, 0) + 1
    return max(counts.values(), default=0)


async def _walk_group(transport: SnmpTransport, target: Target, group: list[Oid], rows: Rows, reps: int) -> None:
    cursor: dict[Oid, Oid] = {c: c for c in group}
    counts: dict[Oid, int] = dict.fromkeys(group, 0)
    shrunk = False
    while cursor:
        active = list(cursor)
        asked = [cursor[c] for c in active]
        try:
            if reps:
                answer = await transport.get_bulk(target, asked, reps)
            else:
                answer = await transport.get_next(target, asked)
        except SnmpErrorStatus as exc:
            if exc.status == 2 and not reps:  # v1 noSuchName on GETNEXT: that column is past its end
                bad = active[exc.index - 1] if 1 <= exc.index <= len(active) else active[0]
                del cursor[bad]
                continue
            if exc.status == 1 and reps > 1:  # tooBig
                reps = max(1, reps // 4)
                continue
            raise
        except DeviceTimeout:
            # some agents silently drop an answer that would not fit: ask for less, once
            if reps > 2 and not shrunk:
                reps, shrunk = max(1, reps // 4), True
                log.debug("GETBULK to %s timed out; retrying with max-repetitions %d", target.host, reps)
                continue
            raise
        if not answer:
            break
        finished: set[Oid] = set()
        for i, (oid, value) in enumerate(answer):
            col = active[i % len(active)]
            if col in finished or col not in cursor:
                continue
            if isinstance(value, Missing) or not _under(oid, col) or oid <= cursor[col]:
                finished.add(col)
                continue
            rows.setdefault(oid[len(col):], {})[col] = value
            cursor[col] = oid
            counts[col] += 1
            if counts[col] >= MAX_ROWS:
                finished.add(col)
        for col in finished:
            cursor.pop(col, None)
