"""SNMP agents on loopback (snmpsim, net-snmp's snmpd): started on free ports, waited for, always stopped.

Product code: ``tslcd demo`` serves its communes' SNMP through these agents, and the
tests use them as fixtures. Every agent listens on 127.0.0.0/8 only, and every probe
this module sends goes there too (docs/design.md, "Tests touch only our own hosts").

Two facts measured for issue 4 shape it:

- snmpsim run as root refuses to start unless ``SNMPSIM_ALLOW_ROOT=true`` (dropping to
  ``nobody`` fails: the interpreter lives under /root), so it is set for it;
- Debian's snmpd opens SMUX on tcp 0.0.0.0:199 unless started with ``-I -smux``, and
  reads the system's config files unless given ``-C``.

Secrets (v3 keys) go to the agents through files readable by their owner only, never on
a command line (which ``ps`` shows to everyone), and snmpsim logs at error level only
(at info level it prints the v3 keys).
"""

from __future__ import annotations

import atexit
import bz2
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from monitor.errors import AgentError
from monitor.files import atomic_path

__all__ = [
    "Agent",
    "AgentError",
    "Interface",
    "UsmUser",
    "answers",
    "discovery_probe",
    "free_udp_port",
    "install_recording",
    "require_loopback",
    "router_recording",
    "v2c_get",
    "snmpsim_data_file",
    "start_snmpd",
    "start_snmpsim",
    "wait_until_answers",
    "write_recording",
]

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
SNMPD = "snmpd"




def require_loopback(host: str) -> str:
    """Return ``host`` if it is an IPv4 address in 127.0.0.0/8, else raise ValueError."""
    try:
        ok = ipaddress.ip_address(host) in LOOPBACK
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{host!r}: local SNMP agents listen on 127.0.0.0/8 only")
    return host


def free_udp_port(host: str = "127.0.0.1", *also: str, tries: int = 50) -> int:
    """A UDP port free right now on ``host`` and on every address in ``also``.

    The caller retries if another process takes it before the agent binds it.
    """
    for _ in range(tries):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((require_loopback(host), 0))
            port = int(s.getsockname()[1])
            if all(_bindable(h, port) for h in also):
                return port
    raise OSError(f"no UDP port free on all of {[host, *also]} after {tries} tries")


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((require_loopback(host), port))
        except OSError:
            return False
        return True


# ---------------------------------------------------------------- is an agent answering?


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + body


def _int(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True))


def _octets(value: bytes) -> bytes:
    return _tlv(0x04, value)


def _seq(*parts: bytes) -> bytes:
    return _tlv(0x30, b"".join(parts))


def discovery_probe(msg_id: int) -> bytes:
    """An SNMPv3 engine-discovery request (noAuthNoPriv, empty engine ID and user).

    Any SNMP agent that speaks v3 answers it with a Report, whatever its communities,
    users or contexts, so it tells "an agent is listening" without knowing credentials.
    """
    usm = _seq(_octets(b""), _int(0), _int(0), _octets(b""), _octets(b""), _octets(b""))
    pdu = _tlv(0xA0, _int(msg_id) + _int(0) + _int(0) + _seq())
    return _seq(
        _int(3),
        _seq(_int(msg_id), _int(65507), _octets(b"\x04"), _int(3)),
        _octets(usm),
        _seq(_octets(b""), _octets(b""), pdu),
    )


def _oid(dotted: str) -> bytes:
    parts = [int(x) for x in dotted.split(".")]
    body = bytearray([40 * parts[0] + parts[1]])
    for n in parts[2:]:
        chunk = [n & 0x7F]
        while n > 0x7F:
            n >>= 7
            chunk.append(0x80 | (n & 0x7F))
        body += bytes(reversed(chunk))
    return _tlv(0x06, bytes(body))


def v2c_get(community: str, request_id: int, oid: str = "1.3.6.1.2.1.1.3.0") -> bytes:
    """An SNMPv2c GET of one OID."""
    varbind = _seq(_oid(oid), b"\x05\x00")
    pdu = _tlv(0xA0, _int(request_id) + _int(0) + _int(0) + _seq(varbind))
    return _seq(_int(1), _octets(community.encode()), pdu)


def answers(host: str, port: int, timeout_s: float = 0.2, *, community: str | None = None) -> bool:
    """True when an SNMP agent on ``host:port`` answers within ``timeout_s``: a v2c GET of sysUpTime with
    ``community``, or without one an SNMPv3 discovery probe. Waits on the socket, never sleeps."""
    require_loopback(host)
    msg_id = int.from_bytes(os.urandom(3), "big")
    message = discovery_probe(msg_id) if community is None else v2c_get(community, msg_id)
    deadline = time.monotonic() + timeout_s
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, port))
        s.send(message)
        while True:  # bounded by the deadline
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            s.settimeout(left)
            try:
                return bool(s.recv(65535))
            except TimeoutError:
                return False
            except ConnectionRefusedError:
                continue  # nothing bound there yet: the refusal arrives at once; wait out the timeout


def wait_until_answers(host: str, port: int, *, deadline_s: float, proc: subprocess.Popen[bytes] | None = None,
                       describe: Callable[[], str] = lambda: "", community: str | None = None,
                       clock: Callable[[], float] = time.monotonic) -> float:
    """Probe until the agent answers; return the seconds it took.

    Waits on the socket (each probe's reply or its 0.2 s timeout), never sleeps, and gives
    up at the deadline or as soon as ``proc`` has exited, raising AgentError with
    ``describe()`` (the agent's last log lines).
    """
    start = clock()
    attempts = 0
    while True:
        attempts += 1
        if proc is not None and proc.poll() is not None:
            raise AgentError(f"agent for {host}:{port} exited with status {proc.returncode} before answering"
                             f"{describe()}")
        if answers(host, port, timeout_s=min(0.2, max(0.01, deadline_s - (clock() - start))), community=community):
            return clock() - start
        if clock() - start >= deadline_s:
            raise AgentError(f"no SNMP agent answered on {host}:{port} within {deadline_s:g} s "
                             f"({attempts} probes){describe()}")


# ---------------------------------------------------------------- agents


@dataclass(frozen=True)
class UsmUser:
    """An SNMPv3 user an agent accepts; protocol names as in config.yaml's SNMP profiles."""

    name: str
    auth_protocol: str = "none"  # none md5 sha sha224 sha256 sha384 sha512
    auth_key: str = field(default="", repr=False)
    priv_protocol: str = "none"  # none des aes128 aes192 aes256 (and aes192c aes256c for snmpsim)
    priv_key: str = field(default="", repr=False)

    @property
    def level(self) -> str:
        """net-snmp's name of the user's security level."""
        if self.priv_protocol != "none":
            return "priv"
        return "auth" if self.auth_protocol != "none" else "noauth"


_LIVE: set[Agent] = set()
_LIVE_LOCK = threading.Lock()


def _stop_all_at_exit() -> None:
    with _LIVE_LOCK:
        agents = list(_LIVE)
    for agent in agents:
        agent.stop()


atexit.register(_stop_all_at_exit)


class Agent:
    """A running agent process and the loopback endpoints it answers on. Stop it with ``stop()`` or ``with``."""

    def __init__(self, kind: str, proc: subprocess.Popen[bytes], endpoints: Sequence[tuple[str, int]],
                 workdir: Path, *, owns_workdir: bool) -> None:
        self.kind = kind
        self.proc = proc
        self.endpoints = tuple(endpoints)
        self.workdir = workdir
        self.log_path = workdir / f"{kind}.log"
        self._owns_workdir = owns_workdir
        with _LIVE_LOCK:
            _LIVE.add(self)

    @property
    def host(self) -> str:
        return self.endpoints[0][0]

    @property
    def port(self) -> int:
        return self.endpoints[0][1]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the agent's log, for error messages."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        tail = [line for line in text.splitlines() if line.strip()][-lines:]
        return ("\n  " + "\n  ".join(tail)) if tail else ""

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate the agent (kill it if it does not exit in ``timeout_s``) and remove its files. Idempotent."""
        try:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout_s)
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(self)
            if self._owns_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = ", ".join(f"{h}:{p}" for h, p in self.endpoints)
        return f"<{self.kind} pid {self.proc.pid} on {where}{'' if self.alive() else ' (stopped)'}>"


def _workdir(workdir: Path | None, prefix: str) -> tuple[Path, bool]:
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        return workdir, False
    return Path(tempfile.mkdtemp(prefix=prefix)), True


def _private_file(path: Path, text: str) -> Path:
    """Write ``text`` to a file only its owner can read (it holds v3 keys)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def _launch(kind: str, argv: Sequence[str], endpoints: Sequence[tuple[str, int]], workdir: Path, owns: bool,
            env: dict[str, str], deadline_s: float, community: str | None = None) -> Agent:
    log = open(workdir / f"{kind}.log", "ab")  # noqa: SIM115 - handed to the child, closed below
    try:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=env, cwd=workdir, start_new_session=True)
    finally:
        log.close()
    agent = Agent(kind, proc, endpoints, workdir, owns_workdir=owns)
    started = time.monotonic()
    try:
        for host, port in endpoints:  # one deadline for all of them
            left = max(0.01, deadline_s - (time.monotonic() - started))
            wait_until_answers(host, port, deadline_s=left, proc=proc, describe=agent.log_tail,
                               community=community)
    except BaseException:
        agent.stop()
        raise
    return agent


def _retrying(start: Callable[[list[tuple[str, int]]], Agent], hosts: Sequence[str], port: int | None,
              tries: int = 3) -> Agent:
    """Start on free ports; if another process took a port first the agent exits, and we try again."""
    for attempt in range(tries):
        chosen_port = port if port is not None else free_udp_port(*hosts)
        chosen = [(require_loopback(h), chosen_port) for h in hosts]
        try:
            return start(chosen)
        except AgentError:
            if port is not None or attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


# net-snmp's protocol names for the config's names.
_NETSNMP_AUTH = {"md5": "MD5", "sha": "SHA", "sha224": "SHA-224", "sha256": "SHA-256", "sha384": "SHA-384",
                 "sha512": "SHA-512"}
_NETSNMP_PRIV = {"des": "DES", "aes128": "AES", "aes192": "AES-192", "aes256": "AES-256"}


def _snmpd_conf(communities: Iterable[str], users: Iterable[UsmUser], sys_name: str, sys_descr: str,
                extra: str) -> str:
    lines = ["# written by tslcd (monitor/lab/agents.py); removed when the agent stops",
             f"sysName {sys_name}", f"sysDescr {sys_descr}", "sysLocation loopback test agent",
             "dontLogTCPWrappersConnects yes"]
    for c in communities:
        if not c or any(ch.isspace() for ch in c):
            raise ValueError("communities for snmpd must be non-empty and without spaces")
        lines.append(f"rocommunity {c} 127.0.0.0/8")
    for u in users:
        words = ["createUser", u.name]
        if u.auth_protocol != "none":
            if u.auth_protocol not in _NETSNMP_AUTH:
                raise ValueError(f"snmpd has no auth protocol {u.auth_protocol!r}")
            words += [_NETSNMP_AUTH[u.auth_protocol], f'"{u.auth_key}"']
            if u.priv_protocol != "none":
                if u.priv_protocol not in _NETSNMP_PRIV:
                    raise ValueError(f"snmpd has no privacy protocol {u.priv_protocol!r}")
                words += [_NETSNMP_PRIV[u.priv_protocol], f'"{u.priv_key}"']
        lines += [" ".join(words), f"rouser {u.name} {u.level}"]
    return "\n".join(lines) + "\n" + extra


def start_snmpd(*, communities: Sequence[str] = ("public",), users: Sequence[UsmUser] = (),
                sys_name: str = "tslcd-snmpd", sys_descr: str = "net-snmp agent started by tslcd",
                hosts: Sequence[str] = ("127.0.0.1",), port: int | None = None, workdir: Path | None = None,
                extra_config: str = "", deadline_s: float = 15.0) -> Agent:
    """Start net-snmp's snmpd on each of ``hosts`` (one port for all, a free one by default), with its own config.

    v2c ``communities`` are read-only from 127.0.0.0/8; v3 ``users`` get ``createUser`` and
    ``rouser`` at their level (authPriv SHA/AES etc.). The IF-MIB it serves is this
    machine's own interfaces (``lo`` always exists, and its counters move).
    """
    for h in hosts:
        require_loopback(h)
    if shutil.which(SNMPD) is None:
        raise AgentError("snmpd is not installed (Debian: apt-get install snmpd)")
    wd, owns = _workdir(workdir, "tslcd-snmpd-")
    try:
        conf = _private_file(wd / "snmpd.conf", _snmpd_conf(communities, users, sys_name, sys_descr, extra_config))
        persist = wd / "persist"
        persist.mkdir(mode=0o700, exist_ok=True)
        # MIBS="" keeps snmpd from parsing every MIB file it finds (seconds of noise in the log).
        env = {**os.environ, "SNMP_PERSISTENT_DIR": str(persist), "MIBS": "", "MIBDIRS": str(wd)}

        def start(endpoints: list[tuple[str, int]]) -> Agent:
            listen = ",".join(f"udp:{h}:{p}" for h, p in endpoints)
            argv = [SNMPD, "-f", "-Lo", "-I", "-smux", "-C", "-c", str(conf), listen]
            return _launch("snmpd", argv, endpoints, wd, owns, env, deadline_s)

        return _retrying(start, hosts, port)
    except BaseException:
        if owns:
            shutil.rmtree(wd, ignore_errors=True)
        raise


# snmpsim's protocol names for the config's names (aes192/aes256 are the Blumenthal
# variants net-snmp uses; aes192c/aes256c the Reeder ones Cisco uses).
_SNMPSIM_AUTH = {"md5": "MD5", "sha": "SHA", "sha224": "SHA224", "sha256": "SHA256", "sha384": "SHA384",
                 "sha512": "SHA512"}
_SNMPSIM_PRIV = {"des": "DES", "aes128": "AES128", "aes192": "AES192BLMT", "aes256": "AES256BLMT",
                 "aes192c": "AES192", "aes256c": "AES256"}


def start_snmpsim(data_dir: Path, *, hosts: Sequence[str] = ("127.0.0.1",), port: int | None = None,
                  user: UsmUser | None = None, cache_dir: Path | None = None, workdir: Path | None = None,
                  deadline_s: float = 90.0) -> Agent:
    """Start snmpsim serving the recordings in ``data_dir`` on each of ``hosts`` (one port for all).

    A recording ``NAME.snmprec`` (or ``.snmprec.bz2``) answers v2c community ``NAME`` and,
    for ``user``, v3 context ``NAME``. snmpsim re-reads a recording when its mtime (in whole
    seconds) changes: use ``write_recording`` to change one under a running agent.
    Indexing large recordings takes seconds the first time; ``cache_dir`` keeps the
    indexes between agents.
    """
    for h in hosts:
        require_loopback(h)
    wd, owns = _workdir(workdir, "tslcd-snmpsim-")
    try:
        cache = cache_dir or (wd / "cache")
        cache.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "SNMPSIM_ALLOW_ROOT": "true"}
        recordings = sorted(Path(data_dir).glob("*.snmprec")) + sorted(Path(data_dir).glob("*.snmprec.bz2"))
        ready_community = recordings[0].name.split(".snmprec")[0] if recordings else None

        def start(endpoints: list[tuple[str, int]]) -> Agent:
            engine_args = [f"--data-dir={Path(data_dir).resolve()}"]
            if user is not None:
                engine_args.append(f"--v3-user={user.name}")
                if user.auth_protocol != "none":
                    engine_args += [f"--v3-auth-key={user.auth_key}",
                                    f"--v3-auth-proto={_SNMPSIM_AUTH[user.auth_protocol]}"]
                if user.priv_protocol != "none":
                    engine_args += [f"--v3-priv-key={user.priv_key}",
                                    f"--v3-priv-proto={_SNMPSIM_PRIV[user.priv_protocol]}"]
            engine_args += [f"--agent-udpv4-endpoint={h}:{p}" for h, p in endpoints]
            if any(any(ch.isspace() for ch in a) for a in engine_args):
                raise ValueError("snmpsim arguments (paths, user, keys) must not contain spaces")
            args_file = _private_file(wd / "snmpsim.args", "\n".join(engine_args) + "\n")
            argv = [sys.executable, "-c", "import sys; from snmpsim.commands.responder import main; sys.exit(main())",
                    "--log-level=error", f"--cache-dir={cache}", f"--args-from-file={args_file}"]
            # Ready means answering a v2c GET on a recording: snmpsim answers v3 discovery a moment
            # before, and was seen to drop the first v2c request that followed it.
            return _launch("snmpsim", argv, endpoints, wd, owns, env, deadline_s, community=ready_community)

        return _retrying(start, hosts, port)
    except BaseException:
        if owns:
            shutil.rmtree(wd, ignore_errors=True)
        raise


# ---------------------------------------------------------------- recordings


def snmpsim_data_file(relative: str) -> Path:
    """A recording shipped by the snmpsim-data package, e.g. ``network/router/vyatta-unknown.snmprec.bz2``."""
    import snmpsim_data

    path = Path(snmpsim_data.__file__).parent / "data" / relative
    if not path.is_file():
        raise FileNotFoundError(f"snmpsim-data has no recording {relative}")
    return path


def install_recording(src: Path, data_dir: Path, name: str) -> Path:
    """Copy a recording into ``data_dir`` as ``NAME.snmprec`` (community / context ``NAME``), decompressed.

    snmpsim can serve ``.snmprec.bz2`` directly, but every lookup then decompresses from
    the start of the file: hundreds of milliseconds per request on a large recording.
    """
    dest = Path(data_dir) / f"{name}.snmprec"
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.name.endswith(".bz2"):
        with bz2.open(src, "rb") as f_in, open(dest, "wb") as f_out:
            shutil.copyfileobj(f_in, f_out)
    else:
        shutil.copyfile(src, dest)
    return dest


_mtime_lock = threading.Lock()


def write_recording(path: Path, text: str) -> Path:
    """Replace a recording atomically so that a running snmpsim serves the new content.

    snmpsim compares mtimes in whole seconds, so the new file gets an mtime at least one
    second after both the old one and now (set, not waited for).
    """
    with _mtime_lock:
        try:
            old = path.stat().st_mtime
        except FileNotFoundError:
            old = 0.0
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
            stamp = float(int(max(old, time.time())) + 1)
            os.utime(tmp, (stamp, stamp))
    return path


@dataclass(frozen=True)
class Interface:
    """One row of a simulated router's ifTable/ifXTable.

    Octet counters are the values at agent start; a non-zero ``*_rate`` (bytes/second)
    makes them move with time (snmpsim's ``numeric`` variation), wrapping at 2^64 (or 2^32
    without ``hc``).
    """

    index: int
    name: str
    descr: str = ""
    alias: str = ""
    oper_up: bool = True
    in_octets: int = 0
    out_octets: int = 0
    in_rate: float = 0.0
    out_rate: float = 0.0
    in_errors: int = 0
    out_errors: int = 0
    hc: bool = True  # has ifXTable 64-bit counters


def _hex(text: str) -> str:
    return text.encode("utf-8").hex()


def router_recording(*, sys_name: str, interfaces: Sequence[Interface], sys_descr: str = "tslcd simulated router",
                     sys_object_id: str = "1.3.6.1.4.1.8072.3.2.10", uptime_ticks: int = 8_640_000,
                     reboot_every_s: float | None = None, moving_uptime: bool = True) -> str:
    """The .snmprec text of a small router: system group, ifTable, ifXTable.

    ``moving_uptime`` makes sysUpTime count from ``uptime_ticks`` at agent start (``numeric``
    variation); ``reboot_every_s`` makes it fall back to 0 every so often, like a router
    that reboots now and then. Otherwise sysUpTime is the constant ``uptime_ticks``.
    """
    rows: list[tuple[tuple[int, ...], str]] = []

    def add(oid: str, tag: str, value: object) -> None:
        rows.append((tuple(int(x) for x in oid.split(".")), f"{oid}|{tag}|{value}"))

    add("1.3.6.1.2.1.1.1.0", "4x", _hex(sys_descr))
    add("1.3.6.1.2.1.1.2.0", "6", sys_object_id)
    if reboot_every_s:
        add("1.3.6.1.2.1.1.3.0", "67:numeric", f"rate=100,function=fmod%<time>%{int(reboot_every_s * 100)}")
    elif moving_uptime:
        add("1.3.6.1.2.1.1.3.0", "67:numeric", f"rate=100,initial={uptime_ticks},max=4294967295,wrap=1")
    else:
        add("1.3.6.1.2.1.1.3.0", "67", uptime_ticks)
    add("1.3.6.1.2.1.1.5.0", "4x", _hex(sys_name))
    add("1.3.6.1.2.1.2.1.0", "2", len(interfaces))

    def counter(oid: str, bits: int, start: int, rate: float) -> None:
        tag = "70" if bits == 64 else "65"
        top = 2**bits - 1
        if rate:
            add(oid, f"{tag}:numeric", f"rate={rate:g},initial={start % (top + 1)},max={top},wrap=1")
        else:
            add(oid, tag, start % (top + 1))

    for i in interfaces:
        x = i.index
        add(f"1.3.6.1.2.1.2.2.1.1.{x}", "2", x)
        add(f"1.3.6.1.2.1.2.2.1.2.{x}", "4x", _hex(i.descr or i.name))
        add(f"1.3.6.1.2.1.2.2.1.3.{x}", "2", 6)
        add(f"1.3.6.1.2.1.2.2.1.7.{x}", "2", 1)
        add(f"1.3.6.1.2.1.2.2.1.8.{x}", "2", 1 if i.oper_up else 2)
        counter(f"1.3.6.1.2.1.2.2.1.10.{x}", 32, i.in_octets, i.in_rate)
        add(f"1.3.6.1.2.1.2.2.1.14.{x}", "65", i.in_errors)
        counter(f"1.3.6.1.2.1.2.2.1.16.{x}", 32, i.out_octets, i.out_rate)
        add(f"1.3.6.1.2.1.2.2.1.20.{x}", "65", i.out_errors)
        add(f"1.3.6.1.2.1.31.1.1.1.1.{x}", "4x", _hex(i.name))
        if i.hc:
            counter(f"1.3.6.1.2.1.31.1.1.1.6.{x}", 64, i.in_octets, i.in_rate)
            counter(f"1.3.6.1.2.1.31.1.1.1.10.{x}", 64, i.out_octets, i.out_rate)
        add(f"1.3.6.1.2.1.31.1.1.1.18.{x}", "4x", _hex(i.alias))
    rows.sort()
    return "".join(line + "\n" for _, line in rows)
