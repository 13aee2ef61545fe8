"""SNMP polling in a worker process of its own, so that a poll never waits for the main process's GIL.

pysnmp and pyasn1 cost about a millisecond of CPU per GET; in the main process they shared one
interpreter with the ICMP sweeps, the state machine and the rendering of /metrics, and a poll of
20,000 nodes took 47-52 s of its 60 s interval while the second core idled (docs/benchmarks.md).
``SnmpWorker`` has the interface the service uses of ``SnmpPoller`` (``poll``, ``forget``,
``close``) and runs a real ``SnmpPoller`` in a child process (``python -m monitor.runtime.snmp_worker``: a
fresh interpreter importing only what polling needs, no inherited threads or sockets), exchanging compact
tuples over a socket pair (multiprocessing's ``Connection``):

- to the worker: ``("nodes", [(code, address, snmp, uplink), ...])`` for the nodes it does not know yet or
  that changed (once, then only changes), ``("poll", [code, ...], spread_s)``, ``("forget", [code, ...])``;
- from the worker: the readings as tuples in the order asked, ``BATCH`` a message: ``("some", [...])`` and
  then, last, ``("readings", [...], cpu_s)``.

A worker that dies (or overruns its deadline, and is then killed by its PID) fails that poll with
``SnmpWorkerError``; the next poll starts a new one (its caches, e.g. the uplinks' ifIndex, are found
again) and ``restarts`` counts it (``tslcd_snmp_worker_restarts_total``). The profiles (with their
secrets) go to the worker through the pipe, never through its command line or environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

from inventory.model import Node
from monitor.config import SnmpProfile
from monitor.core.snmp import Reason, SnmpReading, UplinkReading
from monitor.errors import TslcdError

log = logging.getLogger("tslcd.snmp")

NodeTuple = tuple[str, str | None, str | None, str | None]
V3_WEIGHT = 1.5  # a v3 node's CPU in the worker, in v2c nodes (SnmpWorkers.load_of)
BATCH = 2000  # readings a message: 20,000 packed at once were 20 MB of tuples beside the readings made of them
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


def unpack(t: tuple[Any, ...], strings: dict[str, str] | None = None) -> SnmpReading:
    """``pack`` undone. With ``strings``, equal strings of earlier polls are reused rather than kept again: a
    node's code, name, description and uplink name arrive anew with every poll, and the readings are kept."""
    if strings is not None:
        s = strings.setdefault
        t = tuple(s(v, v) if type(v) is str else v for v in t)
        up = t[8]
        if up is not None:
            up = tuple(s(v, v) if type(v) is str else v for v in up)
    else:
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
        self.last_cpu_s: float | None = None  # the worker's CPU for its last poll (its event loop's thread)
        self._proc: Any = None
        self._conn: Connection | None = None
        self._sent: dict[str, Node] = {}  # what the worker was told of each node, as of the last poll
        self._strings: dict[str, str] = {}  # strings of readings, reused across polls (unpack)
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        """The worker's PID while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def _start(self) -> None:
        # A plain child process (not multiprocessing's spawn, which would import the main module, the whole
        # command line's imports, into the worker, and start multiprocessing's resource tracker besides): the
        # same interpreter running this module, with one end of a socket pair as its pipe.
        ours, theirs = socket.socketpair()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))  # where the parent imports
        try:
            proc = subprocess.Popen([sys.executable, "-m", "monitor.runtime.snmp_worker", str(theirs.fileno()),
                                     self.log_level], pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # ours alone now: the worker's death closes the pipe, and recv() says so
        conn = Connection(ours.detach())
        conn.send(("profiles", self.profiles, self.max_in_flight))
        self._proc, self._conn, self._sent = proc, conn, {}
        log.info("snmp worker started", extra={"pid": proc.pid})

    def _stop(self, *, kill: bool) -> int | None:
        """End the worker (closing the pipe ends it; ``kill``: SIGKILL by its PID first); its exit status."""
        proc, conn = self._proc, self._conn
        self._proc, self._conn, self._sent = None, None, {}
        if kill and proc is not None and proc.poll() is None:
            proc.kill()  # first: a thread blocked reading the pipe then sees its end
        if conn is not None:
            conn.close()  # the worker sees the end of its pipe and returns
        if proc is None:
            return None
        try:
            proc.wait(_JOIN_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(_JOIN_S)
        code: int | None = proc.returncode
        return code

    async def poll(self, nodes: Sequence[Node], *, spread_s: float = 0.0) -> list[SnmpReading]:
        """Poll every node once in the worker; one reading per node, in order (as ``SnmpPoller.poll``).

        SnmpWorkerError when the worker died or overran ``deadline_s`` (then it is killed); the next poll
        starts a new worker."""
        async with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                if self._proc is not None:
                    self._crashed("it had exited before the poll")
                self._start()
            conn = self._conn
            assert conn is not None
            update = []
            sent = self._sent
            for n in nodes:
                s = sent.get(n.code)
                if s is not n and (s is None or _node_tuple(s) != _node_tuple(n)):
                    update.append(_node_tuple(n))
            try:
                if update:
                    conn.send(("nodes", update))
                conn.send(("poll", [n.code for n in nodes], spread_s))
                readings: list[SnmpReading] = []
                ends = None if self.deadline_s is None else time.monotonic() + self.deadline_s
                while True:  # the readings come a batch at a time: never all of them packed at once
                    reply = await asyncio.wait_for(asyncio.to_thread(conn.recv),
                                                   None if ends is None else max(0.0, ends - time.monotonic()))
                    readings += [unpack(r, self._strings) for r in reply[1]]
                    if reply[0] == "readings":
                        break
            except TimeoutError:
                self._crashed(f"no answer within {self.deadline_s:g} s", kill=True)
                raise SnmpWorkerError(f"the SNMP worker overran its {self.deadline_s:g} s deadline and was "
                                      "killed; the next poll starts another") from None
            except (EOFError, OSError) as e:
                status = self._crashed(f"{type(e).__name__} on its pipe")
                raise SnmpWorkerError(f"the SNMP worker died during a poll (exit status {status}); the next poll "
                                      "starts another") from None
            except asyncio.CancelledError:  # the rest of this poll's answer would be taken for the next one's
                self._stop(kill=True)
                raise
            for n in nodes:
                sent[n.code] = n  # the inventory's own object (an equal one from a reload replaces it)
            self.last_cpu_s = reply[2] if len(reply) > 2 else None
            if len(self._strings) > 8 * len(self._sent) + 1000:
                self._strings.clear()  # strings of nodes long gone
            return readings

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


class SnmpWorkers:
    """Several ``SnmpWorker`` processes, each polling its share of the nodes, all at once (``snmp.workers``).

    A node always goes to the same worker (a hash of its code), where its caches are. The poll's readings come
    back in the order asked; if a worker fails, the poll fails (``SnmpWorkerError``) as with one worker, and
    that worker alone is started again. Each worker spreads its share of the sends over the same ``spread_s``
    with its share of ``max_in_flight``, so the rate on the network is that of one worker polling them all.
    ``count`` is a number of processes, or None for one per ``nodes_per_worker`` nodes polled, a v3 node
    counting ``V3_WEIGHT`` (at least one, at most one per CPU), worked out again at each poll: a change of that
    number restarts every worker."""

    def __init__(self, profiles: Mapping[str, SnmpProfile], *, count: int | None = None,
                 nodes_per_worker: int = 25_000, max_in_flight: int = 200, log_level: str = "info",
                 deadline_s: float | None = None, on_restart: Callable[[], None] | None = None) -> None:
        self.profiles = dict(profiles)
        self.count, self.nodes_per_worker = count, nodes_per_worker
        self.max_in_flight, self.log_level, self.deadline_s = max_in_flight, log_level, deadline_s
        self.on_restart = on_restart
        self.workers: list[SnmpWorker] = []
        self._retired = 0  # restarts of workers since replaced by a new set

    def wanted(self, load: float) -> int:
        """How many worker processes poll nodes of this ``load`` (``load_of``)."""
        if self.count is not None:
            return self.count
        return max(1, min(os.cpu_count() or 1, math.ceil(load / self.nodes_per_worker)))

    def load_of(self, nodes: Sequence[Node]) -> float:
        """The nodes, a v3 node counting 1.5: v3 costs 1.6 ms of CPU a node to v2c's 1.1 (docs/benchmarks.md)."""
        v3 = {name for name, p in self.profiles.items() if p.version == "3"}
        return sum(V3_WEIGHT if n.snmp in v3 else 1.0 for n in nodes)

    @property
    def restarts(self) -> int:
        return self._retired + sum(w.restarts for w in self.workers)

    @property
    def pids(self) -> list[int]:
        return [p for w in self.workers if (p := w.pid) is not None]

    @property
    def pid(self) -> int | None:
        """The first worker's PID (one worker: what ``SnmpWorker.pid`` says)."""
        return self.workers[0].pid if self.workers else None

    def _share(self, code: str) -> int:
        return zlib.crc32(code.encode()) % len(self.workers)

    async def poll(self, nodes: Sequence[Node], *, spread_s: float = 0.0) -> list[SnmpReading]:
        """Poll every node once, each in its worker; one reading per node, in order (as ``SnmpPoller.poll``)."""
        n = self.wanted(self.load_of(nodes))
        if n != len(self.workers):
            if self.workers:
                log.info("snmp workers", extra={"before": len(self.workers), "now": n, "nodes": len(nodes)})
            self.close()
            per = max(1, self.max_in_flight // n)
            self.workers = [SnmpWorker(self.profiles, max_in_flight=per, log_level=self.log_level,
                                       deadline_s=self.deadline_s, on_restart=self.on_restart) for _ in range(n)]
        if n == 1:
            return await self.workers[0].poll(nodes, spread_s=spread_s)
        shares: list[list[Node]] = [[] for _ in self.workers]
        where = []
        for node in nodes:
            k = self._share(node.code)
            where.append((k, len(shares[k])))
            shares[k].append(node)
        started = time.monotonic()
        got = await asyncio.gather(*(w.poll(s, spread_s=spread_s) for w, s in zip(self.workers, shares,
                                                                                   strict=True)),
                                   return_exceptions=True)
        for g in got:
            if isinstance(g, BaseException):
                raise g
        readings = [got[k][j] for k, j in where]  # type: ignore[index]
        cpu = [w.last_cpu_s for w in self.workers]
        log.info("snmp workers poll", extra={
            "probe": "snmp", "nodes": len(nodes), "workers": n, "duration_s": round(time.monotonic() - started, 3),
            "cpu_s": round(sum(c for c in cpu if c is not None), 3)})
        return readings

    def forget(self, codes: Iterable[str]) -> None:
        """Drop what the workers keep of nodes that left the inventory."""
        if not self.workers:
            return
        by: list[list[str]] = [[] for _ in self.workers]
        for c in codes:
            by[self._share(c)].append(c)
        for w, cs in zip(self.workers, by, strict=True):
            if cs:
                w.forget(cs)

    def close(self) -> None:
        """End every worker (idempotent)."""
        self._retired += sum(w.restarts for w in self.workers)
        for w in self.workers:
            w.close()
        self.workers = []


# -- the worker process ------------------------------------------------------------------------------------


def serve(conn: Connection, log_level: str) -> None:
    """The worker's main: poll as asked until the pipe closes."""
    from monitor.probes.snmp import SnmpPoller
    from monitor.procs import tune_malloc
    from monitor.runtime import logs

    tune_malloc()

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
                    cpu = time.thread_time()
                    readings = await poller.poll([nodes[c] for c in msg[1]], spread_s=msg[2])
                    last = max(0, len(readings) - 1) // BATCH * BATCH
                    for i in range(0, last, BATCH):
                        conn.send(("some", [pack(r) for r in readings[i:i + BATCH]]))
                    conn.send(("readings", [pack(r) for r in readings[last:]], time.thread_time() - cpu))
        finally:
            poller.close()

    asyncio.run(main())
    log.debug("snmp worker stopping", extra={"pid": os.getpid()})


if __name__ == "__main__":  # the worker process (SnmpWorker._start): python -m monitor.runtime.snmp_worker FD LEVEL
    serve(Connection(int(sys.argv[1])), sys.argv[2])
