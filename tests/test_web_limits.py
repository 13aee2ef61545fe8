"""Idle and slow clients cannot starve the endpoints (issue 12, hostile finding 1).

A real `tslcd run` under systemd's default limit of 1,024 open files, attacked on loopback by
1,100 idle connections kept open (re-opened as soon as the server drops them) and by slowloris
clients that send a request head one line at a time: every scrape still succeeds, the slow
clients are dropped after the configured timeout, and the log stays small.
"""

from __future__ import annotations

import errno
import resource
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.lab.demo import inventory_yaml
from tests.conftest import small_inventory, stop

TSLCD = [sys.executable, "-m", "monitor.cli"]
IDLE = 1_100
SLOW = 8
IDLE_TIMEOUT_S = 2.0


def _limit_open_files() -> None:  # runs in the child before exec: what systemd gives a service by default
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


@pytest.fixture
def monitor(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    (tmp_path / "inv.yaml").write_text(inventory_yaml(small_inventory().nodes), encoding="utf-8")
    (tmp_path / "config.yaml").write_text(
        "province: Đắk Lắk\ninventory: inv.yaml\n"
        f"web:\n  listen: 127.0.0.1:0\n  idle_timeout_s: {IDLE_TIMEOUT_S}\n"
        "icmp:\n  interval_s: 5\n  timeout_s: 0.5\n  echo_interval_s: 0.05\n"
        "store:\n  url: sqlite:///history.db\n", encoding="utf-8")
    log = tmp_path / "stderr.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([*TSLCD, "run", "--config", str(tmp_path / "config.yaml")],
                                cwd=tmp_path, stderr=err, preexec_fn=_limit_open_files)
    try:
        port = 0
        end = time.monotonic() + 30
        while time.monotonic() < end and proc.poll() is None and not port:
            for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
                if "status page http://127.0.0.1:" in line:
                    port = int(line.split("status page http://127.0.0.1:")[1].split("/")[0])
            time.sleep(0.1)  # polling a file with a deadline
        assert port, "no status page URL in the log:\n" + log.read_text(encoding="utf-8", errors="replace")[-3000:]
        yield port, log
    finally:
        stop(proc, grace_s=15)


def _open(port: int) -> socket.socket:
    """A connection established by the kernel (it may still wait in the listen backlog for accept())."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        pass  # the backlog is full: the socket stays, as an attacker's would, and is retried when it closes
    s.setblocking(False)
    return s


class IdleFlood:
    """``n`` connections that never send a byte, re-opened as soon as the server closes one."""

    def __init__(self, port: int, n: int) -> None:
        self.port, self.socks = port, [_open(port) for _ in range(n)]
        self.reopened = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._keep, daemon=True)
        self.thread.start()

    def _keep(self) -> None:
        end = time.monotonic() + 120  # bounded even if the test forgets to stop it
        while not self.stop.is_set() and time.monotonic() < end:
            poller = select.poll()  # select() cannot watch descriptors above 1,023
            for s in self.socks:
                poller.register(s, select.POLLIN | select.POLLHUP | select.POLLERR)
            ready = {fd for fd, _ in poller.poll(0)}
            for i, s in enumerate(self.socks):
                if s.fileno() not in ready:
                    continue
                try:
                    closed = s.recv(1) == b""
                except OSError as e:
                    closed = e.errno != errno.EAGAIN
                if closed:
                    s.close()
                    self.socks[i] = _open(self.port)
                    self.reopened += 1
            self.stop.wait(0.05)  # pacing the attacker, not synchronising the test

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        for s in self.socks:
            s.close()


def _scrape(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert b"tslcd_node_up" in r.read()
        return int(r.status)


def test_idle_connections_do_not_starve_scrapes_and_the_log_stays_small(monitor: tuple[int, Path]) -> None:
    port, log = monitor
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] > IDLE + 100, "the test process needs file descriptors"
    flood = IdleFlood(port, IDLE)
    try:
        statuses = []
        end = time.monotonic() + 3 * IDLE_TIMEOUT_S + 5  # scrape across several rounds of dropped idle sockets
        while time.monotonic() < end:
            statuses.append(_scrape(port))
        assert statuses and set(statuses) == {200}, statuses
        assert flood.reopened > 0, "the server never dropped an idle connection"
    finally:
        flood.close()
    text = log.read_text(encoding="utf-8", errors="replace")
    assert "out of system resource" not in text.lower()
    assert len(text) < 200_000, f"{len(text)} bytes of log in {3 * IDLE_TIMEOUT_S + 5:.0f} s"


def test_slow_request_heads_are_dropped_after_the_idle_timeout(monitor: tuple[int, Path]) -> None:
    port, _ = monitor
    slow = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(SLOW)]
    try:
        for s in slow:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            s.setblocking(False)
        open_ = set(range(SLOW))
        started = time.monotonic()
        end = started + IDLE_TIMEOUT_S + 10
        line = 0
        while open_ and time.monotonic() < end:
            line += 1
            for i in list(open_):
                try:
                    slow[i].send(f"X-Slow-{line}: a\r\n".encode())  # one more header line: never the end of the head
                    if slow[i].recv(1) == b"":
                        open_.discard(i)
                except BlockingIOError:
                    pass
                except OSError:
                    open_.discard(i)
            time.sleep(0.5)  # the slowloris pace: one header line every half second
        took = time.monotonic() - started
        assert not open_, f"{len(open_)} of {SLOW} slow clients still connected after {took:.0f} s"
        assert _scrape(port) == 200
    finally:
        for s in slow:
            s.close()


def test_the_throttle_lets_a_burst_through_then_counts_what_it_left_out() -> None:
    import logging

    from monitor.runtime.logs import Throttle

    now = [0.0]
    throttle = Throttle(burst=3, window_s=60, clock=lambda: now[0])

    def record(name: str, msg: str, exc: bool = False) -> logging.LogRecord:
        r = logging.LogRecord(name, logging.ERROR, __file__, 1, msg, (), None)
        if exc:
            try:
                raise OSError("disk full")
            except OSError:
                r.exc_info = sys.exc_info()
        return r

    passed = [throttle.filter(record("asyncio", "socket.accept() out of system resource")) for _ in range(50)]
    assert passed == [True] * 3 + [False] * 47
    assert throttle.filter(record("aiohttp.server", "another kind"))  # kinds are counted apart
    assert all(throttle.filter(record("tslcd.service", "node down")) for _ in range(50))  # ours always pass
    assert [throttle.filter(record("tslcd.recorder", "write failed", exc=True)) for _ in range(5)] == \
        [True] * 3 + [False] * 2  # ours with a traceback are throttled
    now[0] = 61
    later = record("asyncio", "socket.accept() out of system resource")
    assert throttle.filter(later) and later.suppressed == 47  # type: ignore[attr-defined]


class _FakeServer:
    def __init__(self, n: int) -> None:
        self.connections = [_FakeHandler() for _ in range(n)]

    def __call__(self) -> _FakeHandler:
        h = _FakeHandler()
        self.connections.append(h)
        return h


class _FakeHandler:
    closed = False

    def force_close(self) -> None:
        self.closed = True


def test_at_the_cap_the_oldest_idle_connection_goes_and_when_all_are_busy_a_new_one_gets_503() -> None:
    from exporters.web import Connections, _Refuse

    server = _FakeServer(4)
    limits = Connections(4)
    limits.busy.add(server.connections[0])  # the oldest is answering a request: it stays
    assert isinstance(limits.admit(server), _FakeHandler)  # type: ignore[arg-type]
    assert [h.closed for h in server.connections] == [False, True, False, False, False]
    assert isinstance(limits.admit(server), _FakeHandler)  # type: ignore[arg-type]  # the closing one is not counted
    assert [h.closed for h in server.connections] == [False, True, True, False, False, False]
    limits.busy.update(server.connections)
    assert isinstance(limits.admit(server), _Refuse)  # type: ignore[arg-type]
    assert (limits.evicted, limits.refused) == (2, 1)


def test_a_socket_passed_by_listen_fds_is_served_instead_of_web_listen(tmp_path: Path) -> None:
    """systemd's socket activation (and tslcd's own user-namespace sandbox): the listening socket is descriptor 3
    with LISTEN_PID and LISTEN_FDS set; `tslcd run` serves it, not web.listen, and hands it to no child."""
    from tests.conftest import wait_for_url

    (tmp_path / "inv.yaml").write_text(inventory_yaml(small_inventory().nodes), encoding="utf-8")
    (tmp_path / "config.yaml").write_text(
        "province: Đắk Lắk\ninventory: inv.yaml\nweb:\n  listen: 127.0.0.1:1\n"  # port 1 could never be bound
        "icmp:\n  interval_s: 5\n  timeout_s: 0.5\n  echo_interval_s: 0.05\n"
        "store:\n  url: sqlite:///history.db\n", encoding="utf-8")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    # What systemd does between fork and exec: the socket on descriptor 3, the variables naming this process.
    activate = (f"import os, sys; os.dup2({sock.fileno()}, 3); os.environ['LISTEN_PID'] = str(os.getpid()); "
                "os.environ['LISTEN_FDS'] = '1'; os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")
    proc = subprocess.Popen([sys.executable, "-c", activate, *TSLCD[1:], "run", "--config",
                             str(tmp_path / "config.yaml")],
                            cwd=tmp_path, stderr=subprocess.PIPE, text=True, pass_fds=(sock.fileno(),))
    sock.close()
    try:
        url = wait_for_url(proc, 30)
        assert url == f"http://127.0.0.1:{port}/"
        assert _scrape(port) == 200
    finally:
        status = stop(proc, grace_s=15)
    assert status == 0


def test_the_listen_address_binds_as_operators_write_it() -> None:
    """web.listen as written in configs: an IPv4 or IPv6 literal, a name (its IPv4 address), or only a port
    (every address of both families: an IPv4 client connects); a bad one is a ListenError naming it."""
    from exporters.web import bind_socket
    from monitor.errors import ListenError

    for listen, family, host in (("127.0.0.1:0", socket.AF_INET, "127.0.0.1"), ("[::1]:0", socket.AF_INET6, "::1"),
                                 ("localhost:0", socket.AF_INET, "127.0.0.1"), (":0", socket.AF_INET6, "::")):
        sock = bind_socket(listen)
        try:
            assert (sock.family, sock.getsockname()[0]) == (family, host), listen
            if listen == ":0":
                with socket.create_connection(("127.0.0.1", sock.getsockname()[1]), timeout=5):
                    pass
        finally:
            sock.close()
    with pytest.raises(ListenError, match="cannot listen on 127.0.0.1:99999"):
        bind_socket("127.0.0.1:99999")
