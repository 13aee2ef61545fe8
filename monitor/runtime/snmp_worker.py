"""SNMP polling in a worker process of its own, so that a poll never waits for the main process's GIL.

pysnmp and pyasn1 cost about a millisecond of CPU per GET; in the main process they shared one
interpreter with the ICMP sweeps, the state machine and the rendering of /metrics, and a poll of
20,000 nodes took 47-52 s of its 60 s interval while the second core idled (docs/benchmarks.md).
``SnmpWorker`` has the interface the service uses of ``SnmpPoller`` (``poll``, ``forget``,
``close``) and runs a real ``SnmpPoller`` in a child process (multiprocessing, ``spawn``: a fresh
interpreter, no inherited threads or sockets), exchanging compact tuples over a pipe:

- to the worker: ``("nodes", [(code, address, snmp, uplink), ...])`` for the nodes it does not know yet or
  that changed (once, then only changes), ``("poll", [code, ...], spread_s)``, ``("forget", [code, ...])``;
- from the worker: ``("readings", [reading as a tuple, ...])`` in the order asked.

A worker that dies (or overruns its deadline, and is then killed by its PID) fails that poll with
``SnmpWorkerError``; the next poll starts a new one (its caches, e.g. the uplinks' ifIndex, are found
again) and ``restarts`` counts it (``tslcd_snmp_worker_restarts_total``). The profiles (with their
secrets) go to the worker through the pipe, never through its command line or environment.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterable, Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

from inventory.model import Node
from monitor.config import SnmpProfile
from monitor.core.snmp import Reason, SnmpReading, UplinkReading
from monitor.errors import TslcdError

log = logging.getLogger("tslcd.snmp")

NodeTuple = tuple[str, str | None, str | None, str | None]
_JOIN_S = 5.0


class SnmpWorkerError(TslcdError, RuntimeError):
    """The SNMP worker process died or overran its deadline during a poll; the next poll starts another."""


def _node_tuple(n: Node) -> NodeTuple:
    return (n.code, n.address, n.snmp, n.uplink)


def pack(r: SnmpReading) -> tuple[Any, ...]:
    """A reading as plain values (a third of the pickled size of the dataclass, and faster both ways)."""
    up = r.uplink
    return (r.code, r.at, r.reason.value, r.detail, r.uptime_ticks, r.sys_name, r.sys_descr, r.sys_object_id,
            None if up is None else (up.name, up.if_index, up.matched_by, up.oper_status, up.bits, up.in_octets,
                                     up.out_octets, up.in_errors, up.out_errors),
            r.requests, r.duration_s)


def unpack(t: tuple[Any, ...]) -> SnmpReading:
    up = t[8]
    return SnmpReading(t[0], t[1], Reason(t[2]), t[3], t[4], t[5], t[6], t[7],
                       None if up is None else UplinkReading(*up), t[9], t[10])


class SnmpWorker:
    """``SnmpPoller`` in a child process; polls are serialised (the service runs one at a time)."""

    def __init__(self, profiles: Mapping[str, SnmpProfile], *, max_in_flight: int = 200, log_level: str = "info",
                 deadline_s: float | None = None, on_restart: Callable[[], None] | None = None) -> None:
        self.profiles = dict(profiles)
        self.max_in_flight = max_in_flight
        self.log_level = log_level
        self.deadline_s = deadline_s  # a poll that takes longer kills the worker (None: no deadline)
        self.on_restart = on_restart
        self.restarts = 0  # workers started again after one died
        self._proc: Any = None
        self._conn: Connection | None = None
        self._sent: dict[str, NodeTuple] = {}
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        """The worker's PID while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.is_alive() else None

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(target=serve, args=(theirs, self.log_level), name="tslcd-snmp", daemon=True)
        proc.start()
        theirs.close()  # ours alone now: the worker's death closes the pipe, and recv() says so
        ours.send(("profiles", self.profiles, self.max_in_flight))
        self._proc, self._conn, self._sent = proc, ours, {}
        log.info("snmp worker started", extra={"pid": proc.pid})

    def _stop(self, *, kill: bool) -> int | None:
        """End the worker (closing the pipe ends it; ``kill``: SIGKILL by its PID first); its exit status."""
        proc, conn = self._proc, self._conn
        self._proc, self._conn, self._sent = None, None, {}
        if kill and proc is not None and proc.is_alive():
            proc.kill()  # first: a thread blocked reading the pipe then sees its end
        if conn is not None:
            conn.close()  # the worker sees the end of its pipe and returns
        if proc is None:
            return None
        proc.join(_JOIN_S)
        if proc.is_alive():
            proc.kill()
            proc.join(_JOIN_S)
        code: int | None = proc.exitcode
        proc.close()
        return code

    async def poll(self, nodes: Sequence[Node], *, spread_s: float = 0.0) -> list[SnmpReading]:
        """Poll every node once in the worker; one reading per node, in order (as ``SnmpPoller.poll``).

        SnmpWorkerError when the worker died or overran ``deadline_s`` (then it is killed); the next poll
        starts a new worker."""
        async with self._lock:
            if self._proc is None or not self._proc.is_alive():
                if self._proc is not None:
                    self._crashed("it had exited before the poll")
                self._start()
            conn = self._conn
            assert conn is not None
            update = []
            for n in nodes:
                t = _node_tuple(n)
                if self._sent.get(n.code) != t:
                    update.append(t)
            try:
                if update:
                    conn.send(("nodes", update))
                conn.send(("poll", [n.code for n in nodes], spread_s))
                reply = await asyncio.wait_for(asyncio.to_thread(conn.recv), self.deadline_s)
            except TimeoutError:
                self._crashed(f"no answer within {self.deadline_s:g} s", kill=True)
                raise SnmpWorkerError(f"the SNMP worker overran its {self.deadline_s:g} s deadline and was "
                                      "killed; the next poll starts another") from None
            except (EOFError, OSError) as e:
                status = self._crashed(f"{type(e).__name__} on its pipe")
                raise SnmpWorkerError(f"the SNMP worker died during a poll (exit status {status}); the next poll "
                                      "starts another") from None
            for t in update:
                self._sent[t[0]] = t
            return [unpack(r) for r in reply[1]]

    def _crashed(self, why: str, *, kill: bool = False) -> int | None:
        pid = self._proc.pid if self._proc is not None else None
        status = self._stop(kill=kill)
        self.restarts += 1
        log.error("snmp worker lost; the next poll starts another",
                  extra={"pid": pid, "exit_status": status, "why": why})
        if self.on_restart is not None:
            self.on_restart()
        return status

    def forget(self, codes: Iterable[str]) -> None:
        """Drop what the worker keeps of nodes that left the inventory."""
        codes = [c for c in codes if self._sent.pop(c, None) is not None]
        if codes and self._conn is not None:
            try:
                self._conn.send(("forget", codes))
            except OSError:
                pass  # a dead worker: the next poll starts another, which knows nothing

    def close(self) -> None:
        """End the worker (idempotent)."""
        self._stop(kill=False)


# -- the worker process ------------------------------------------------------------------------------------


def serve(conn: Connection, log_level: str) -> None:
    """The worker's main: poll as asked until the pipe closes."""
    from monitor.probes.snmp import SnmpPoller
    from monitor.runtime import logs

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the main process ends us
    logs.setup(log_level)
    kind, profiles, max_in_flight = conn.recv()
    assert kind == "profiles"
    poller = SnmpPoller(profiles, max_in_flight=max_in_flight)
    nodes: dict[str, Node] = {}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    msg = await loop.run_in_executor(None, conn.recv)
                except (EOFError, OSError):
                    return  # the main process closed the pipe, or died
                if msg[0] == "nodes":
                    for code, address, snmp, uplink in msg[1]:
                        nodes[code] = Node(code, code, "commune", "", address=address, snmp=snmp, uplink=uplink)
                elif msg[0] == "forget":
                    poller.forget(msg[1])
                    for code in msg[1]:
                        nodes.pop(code, None)
                elif msg[0] == "poll":
                    readings = await poller.poll([nodes[c] for c in msg[1]], spread_s=msg[2])
                    conn.send(("readings", [pack(r) for r in readings]))
        finally:
            poller.close()

    asyncio.run(main())
    log.debug("snmp worker stopping", extra={"pid": os.getpid()})
