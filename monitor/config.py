"""Typed configuration: config.yaml parsed once, strictly; errors name the file, the key and the line."""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Iterator
from datetime import datetime
from email.utils import getaddresses, parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from inventory.model import Node
from monitor.errors import ConfigError
from monitor.shard import Shard


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    shown = value if len(value) <= 80 else value[:77] + "..."
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:9750), got {shown!r}")
    name = host.strip("[]")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        labels = name.rstrip(".").split(".")
        if len(name) > 253 or not all(0 < len(label) <= 63 for label in labels):
            raise ValueError(f"{shown!r}: the host is neither an IP address nor a DNS name (at most 253 characters, "
                             "labels of 1 to 63)") from None
    return value


Listen = Annotated[str, AfterValidator(_check_listen)]


def _check_tz(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r} (expected an IANA name such as Asia/Ho_Chi_Minh)") from None
    return value


Timezone = Annotated[str, AfterValidator(_check_tz)]
PPS_FLOOR = 5000  # icmp.pps unset never caps a sweep under this many packets a second (Icmp.pps_for)


class Icmp(_Strict):
    """ICMP sweeps: every node with an address, every ``interval_s``."""

    interval_s: float = Field(30.0, ge=1, le=3600, description="seconds between sweep starts")
    count: int = Field(3, ge=1, le=20, description="echoes per node per sweep")
    timeout_s: float = Field(1.0, gt=0, le=10, description="wait for each reply")
    echo_interval_s: float = Field(0.2, ge=0, le=10, description="between echoes to one node")
    pps: int | None = Field(None, ge=10, le=1_000_000, description=(
        "cap on packets per second, all nodes; unset: twice a sweep's average rate (its echoes sent in half "
        "the interval), at least 5000"))

    @model_validator(mode="after")
    def _fits(self) -> Icmp:
        least = (self.count - 1) * self.echo_interval_s + self.timeout_s
        if least >= self.interval_s:
            raise ValueError(
                f"a sweep takes at least (count-1)*echo_interval_s + timeout_s = {least:g} s, "
                f"which does not fit in interval_s = {self.interval_s:g} s"
            )
        return self

    def pps_for(self, targets: int) -> int:
        """The packet-rate cap of a sweep of ``targets`` addresses: ``pps`` when set.

        Unset, it follows the inventory: a sweep sends ``targets * count`` echoes every ``interval_s`` whatever
        the cap, so the average rate is already the operator's choice, and the cap only bounds the bursts.
        Twice the average sends the echoes in half the interval, leaving the other half for the last replies
        and the work after the sweep; never under 5,000 (what a fixed default used to be).
        """
        if self.pps is not None:
            return self.pps
        return max(PPS_FLOOR, math.ceil(2 * targets * self.count / self.interval_s))

    def sending_s(self, targets: int) -> float:
        """Seconds a sweep of ``targets`` addresses spends sending alone, at ``pps_for``."""
        return targets * self.count / self.pps_for(targets)


class States(_Strict):
    """Hysteresis and flapping (docs/design.md, States)."""

    down_after: int = Field(2, ge=1, le=100, description="failed sweeps before a node is down")
    up_after: int = Field(2, ge=1, le=100, description="good sweeps before a down node is up again")
    flap_window_s: float = Field(3600.0, gt=0)
    flap_changes: int = Field(6, ge=2, description="changes within the window that flag flapping")


class Maintenance(_Strict):
    """A declared maintenance window: its nodes are in state ``maintenance`` inside it."""

    start: datetime
    end: datetime
    codes: tuple[str, ...] = ()
    areas: tuple[str, ...] = ()
    reason: str = ""

    @field_validator("codes", mode="before")
    @classmethod
    def _codes_as_text(cls, v: Any) -> Any:
        return [str(c) for c in v] if isinstance(v, list) else v

    @model_validator(mode="after")
    def _sane(self) -> Maintenance:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if not self.codes and not self.areas:
            raise ValueError("name the nodes: codes and/or areas")
        return self


class SnmpProfile(_Strict):
    """SNMP credentials. Secrets come from ``${ENV}`` or a ``*_file``, never inline in examples."""

    version: Literal["2c", "3"] = "2c"
    community: SecretStr | None = None
    user: str | None = None
    auth_protocol: Literal["none", "md5", "sha", "sha224", "sha256", "sha384", "sha512"] = "none"
    auth_key: SecretStr | None = None
    # aes192/aes256: the Blumenthal key extension (net-snmp, snmp_exporter's AES192/AES256);
    # aes192c/aes256c: the Reeder one that Cisco uses (snmp_exporter's AES192C/AES256C).
    priv_protocol: Literal["none", "des", "aes128", "aes192", "aes256", "aes192c", "aes256c"] = "none"
    priv_key: SecretStr | None = None
    context: str = Field("", description="SNMPv3 context name (snmpsim selects its recording by it)")
    port: int = Field(161, ge=1, le=65535)
    timeout_s: float = Field(2.0, gt=0, le=30)
    retries: int = Field(1, ge=0, le=5)

    @model_validator(mode="after")
    def _complete(self) -> SnmpProfile:
        if self.version == "2c" and self.community is None:
            raise ValueError("version 2c needs community (or community_file)")
        if self.version == "3":
            if not self.user:
                raise ValueError("version 3 needs user")
            if self.auth_protocol != "none" and self.auth_key is None:
                raise ValueError(f"auth_protocol {self.auth_protocol} needs auth_key (or auth_key_file)")
            if self.priv_protocol != "none" and self.auth_protocol == "none":
                raise ValueError("privacy (priv_protocol) needs authentication (auth_protocol)")
            if self.priv_protocol != "none" and self.priv_key is None:
                raise ValueError(f"priv_protocol {self.priv_protocol} needs priv_key (or priv_key_file)")
            for name, key in (("auth_key", self.auth_key), ("priv_key", self.priv_key)):
                if key is not None and len(key.get_secret_value()) < 8:
                    raise ValueError(f"{name} must be at least 8 characters (RFC 3414; agents refuse shorter)")
        return self


class Snmp(_Strict):
    """SNMP polls: every node with an address and an ``snmp`` profile, every ``interval_s``."""

    interval_s: float = Field(60.0, ge=10, le=3600, description="seconds between poll starts")
    max_in_flight: int = Field(200, ge=1, le=2000, description="requests outstanding at once")
    spread: float = Field(0.4, ge=0, lt=1, description="share of the interval over which a poll's sends spread "
                          "(0.4: the last request leaves 24 s into a 60 s poll, answers and one retry included the "
                          "poll ends within half its interval, the other half being headroom)")
    down_nodes_max: int = Field(200, ge=0, le=20_000, description="down nodes polled all the same in each poll, "
                                "to tell why they are cut off (filtered, line, power: docs/design.md); 0: none")
    workers: int | None = Field(None, ge=1, le=64, description="SNMP worker processes sharing the nodes (with "
                                "worker: true); none given: one per 25,000 nodes polled, a v3 node "
                                "counting 1.5, at most one per CPU")
    worker: bool = Field(True, description="poll in a worker process of its own (a second core), so that a poll "
                         "never waits for the sweeps and /metrics; false: in the main process")


class Rates(_Strict):
    """Thresholds of the definitions auditors rely on (docs/design.md)."""

    target: float = Field(1.0, gt=0, le=1, description="the plan's target share of communes connected")
    connected_min_availability: float = Field(0.9, ge=0, le=1)
    in_use_min_bytes: int = Field(1_000_000, ge=0)
    min_day_coverage: float = Field(0.5, ge=0, le=1, description="a day the monitor observed less of is marked as "
                                    "not representative in reports (its figures still count)")


class Web(_Strict):
    """The HTTP server: /metrics, /, /api/status.json, /healthz."""

    listen: Listen = "127.0.0.1:9750"
    public_url: str = Field("", description="where people reach the status page, for links in emails")
    config_file: Path | None = Field(None, description="TLS and basic auth: a web configuration file in the format "
                                     "Prometheus exporters share (exporter-toolkit), relative to this file")
    idle_timeout_s: float = Field(15.0, gt=0, le=3600,
                                  description="a connection that has not sent a whole request head within this "
                                  "time (after connecting or after its last answer) is closed: idle keep-alive "
                                  "and slow (slowloris) clients alike")
    max_connections: int = Field(512, ge=8, le=100_000,
                                 description="open connections at most; a new one beyond this closes the oldest "
                                 "idle one (or, when every one is busy, gets 503)")


_TLS_VERSIONS = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
# exporter-toolkit's RequestClientCert and RequireAnyClientCert accept a certificate without verifying it, which
# Python's ssl cannot do: they are refused (unknown value) rather than quietly made stricter or looser.
_CLIENT_AUTH = Literal["NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"]


def _check_bcrypt(value: SecretStr) -> SecretStr:
    text = value.get_secret_value()
    if not (text.startswith(("$2a$", "$2b$", "$2y$")) and len(text) == 60):
        raise ValueError("expected a bcrypt hash ($2y$..., 60 characters; make one with: "
                         "python -c 'import bcrypt, getpass; print(bcrypt.hashpw(getpass.getpass().encode(), "
                         "bcrypt.gensalt()).decode())')")
    return value


class TlsServerConfig(_Strict):
    """``tls_server_config`` of exporter-toolkit's web configuration file (the keys tslcd supports)."""

    cert_file: Path
    key_file: Path
    client_auth_type: _CLIENT_AUTH = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: _TLS_VERSIONS = "TLS12"
    max_version: _TLS_VERSIONS = "TLS13"

    @model_validator(mode="after")
    def _sane(self) -> TlsServerConfig:
        if self.client_auth_type in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert") \
                and self.client_ca_file is None:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file")
        if self.min_version > self.max_version:
            raise ValueError("min_version is above max_version")
        return self


class HttpServerConfig(_Strict):
    """``http_server_config``: headers added to every response."""

    headers: dict[str, str] = Field(default_factory=dict)


class WebConfigFile(_Strict):
    """exporter-toolkit's web configuration file: TLS, basic auth users (bcrypt hashes), response headers."""

    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: dict[str, Annotated[SecretStr, AfterValidator(_check_bcrypt)]] = Field(default_factory=dict)
    http_server_config: HttpServerConfig = HttpServerConfig()

    _source: Path = PrivateAttr(default=Path("web.yml"))

    @property
    def source(self) -> Path:
        return self._source

    def path(self, p: Path) -> Path:
        """``p`` relative to the web configuration file (as exporter-toolkit resolves them)."""
        return p if p.is_absolute() else self._source.parent / p


# -- the daily email ---------------------------------------------------------------------------------


def check_address(value: str) -> str:
    name, addr = parseaddr(value)
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain or " " in addr or "." not in domain.strip("."):
        raise ValueError(f"expected an email address such as tslcd@example.gov.vn or \"Name <addr>\", got {value!r}")
    return value


def _check_hhmm(value: str) -> str:
    hh, sep, mm = value.partition(":")
    if not sep or not (hh.isdigit() and mm.isdigit()) or not (0 <= int(hh) <= 23 and 0 <= int(mm) <= 59):
        raise ValueError(f"expected a local time HH:MM such as 07:00, got {value!r}")
    return f"{int(hh):02d}:{int(mm):02d}"


class SmtpSettings(BaseModel):
    """How to reach the mail server. The password comes from ``${ENV}`` or ``password_file``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1)
    port: int | None = Field(None, ge=1, le=65535, description="default: 25 plain, 587 starttls, 465 tls")
    security: Literal["plain", "starttls", "tls"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = Field(None, description="PEM bundle that signs the server's certificate (private CA)")
    timeout_s: float = Field(30.0, gt=0, le=600)
    local_hostname: str | None = Field(None, description="name sent in EHLO (default: this machine's FQDN)")
    allow_plain_auth: bool = Field(False, description="allow AUTH without TLS (the password crosses in clear)")

    @model_validator(mode="after")
    def _sane(self) -> SmtpSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password (or password_file), or neither")
        if self.username is not None and self.security == "plain" and not self.allow_plain_auth:
            raise ValueError("AUTH over plain SMTP sends the password in clear: use security starttls or tls "
                             "(or set allow_plain_auth: true for a relay on a trusted network)")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or {"plain": 25, "starttls": 587, "tls": 465}[self.security]


class EmailSettings(BaseModel):
    """The ``email:`` section: who gets the daily report, when, in which language, through which server."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    enabled: bool = True
    sender: str = Field(alias="from", description="From: address, e.g. \"TSLCD Đắk Lắk <tslcd@example.gov.vn>\"")
    to: tuple[str, ...] = Field(min_length=1)
    cc: tuple[str, ...] = ()
    reply_to: str | None = None
    send_at: str = Field("07:00", description="local time of the daily send (HH:MM)")
    timezone: Timezone | None = Field(None, description="IANA zone of send_at (default: the config's); the "
                                 "report's days are always the province's")
    language: Literal["vi", "en"] = "vi"
    templates_dir: Path | None = Field(None, description="folder whose email_daily.html/.txt override the shipped "
                                                         "ones (relative to the config file)")
    dashboard_url: str = Field("", description="link in the footer (default: web.public_url)")
    trend_days: int = Field(30, ge=7, le=90)
    max_rows: int = Field(100, ge=5, le=5000, description="rows per list before \"and N more\"")
    catch_up_days: int = Field(7, ge=1, le=60, description="after a stop, send the missed days' reports, at most "
                                                            "this many")
    retry_initial_s: float = Field(60.0, ge=1, le=86_400, description="first retry after a failed send")
    retry_max_s: float = Field(3600.0, ge=1, le=86_400, description="retries back off up to this")
    smtp: SmtpSettings

    @field_validator("sender", "reply_to")
    @classmethod
    def _one_address(cls, v: str | None) -> str | None:
        return None if v is None else check_address(v)

    @field_validator("to", "cc", mode="before")
    @classmethod
    def _list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("to", "cc")
    @classmethod
    def _addresses(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_address(a) for a in v)

    @field_validator("send_at")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        return _check_hhmm(v)

    @model_validator(mode="after")
    def _backoff(self) -> EmailSettings:
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError("retry_max_s must be >= retry_initial_s")
        return self

    @property
    def send_time(self) -> tuple[int, int]:
        hh, mm = self.send_at.split(":")
        return int(hh), int(mm)

    @property
    def recipients(self) -> tuple[str, ...]:
        """Envelope recipients: the bare addresses of To and Cc, without duplicates, in order."""
        seen: dict[str, None] = {}
        for _, addr in getaddresses(list(self.to + self.cc)):
            seen.setdefault(addr, None)
        return tuple(seen)


# -- the history store -------------------------------------------------------------------------------


class StoreSettings(BaseModel):
    """History store: an SQLite file by default, or any SQLAlchemy URL (PostgreSQL for scale-out)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(Path("var/tslcd.sqlite"), description="SQLite file, relative to the config file")
    url: SecretStr | None = Field(None, description="SQLAlchemy URL instead of path, e.g. "
                                  "postgresql+psycopg://tslcd:${TSLCD_DB_PASSWORD}@db/tslcd")
    events_retention_days: int = Field(400, ge=2, le=36_500,
                                       description="raw state changes are kept this long (rollups, outages and "
                                                   "seals forever)")
    samples_flush_sweeps: int = Field(10, ge=1, le=1000,
                                      description="RTT/loss/traffic sums are written every N sweeps (state "
                                                  "changes and heartbeats every sweep)")




class ShardSettings(_Strict):
    """This poller's share of the inventory, when several pollers write one history store (PostgreSQL)."""

    index: int | None = Field(None, ge=0, description="this poller's slot of a stable hash of the codes")
    count: int | None = Field(None, ge=2, le=1024, description="how many hash slots (pollers)")
    areas: tuple[str, ...] = Field((), description="or: the areas this poller watches")
    provinces: tuple[str, ...] = Field((), description="or: the provinces this poller watches (as the config "
                                                        "spells them)")

    @model_validator(mode="after")
    def _one_kind(self) -> ShardSettings:
        hashed = self.index is not None or self.count is not None
        if hashed and (self.index is None or self.count is None):
            raise ValueError("give both index and count")
        if hashed and self.index is not None and self.count is not None and self.index >= self.count:
            raise ValueError(f"index {self.index} is not below count {self.count}")
        if hashed and (self.areas or self.provinces):
            raise ValueError("a hash slot (index, count) or lists of areas and provinces, not both")
        if not hashed and not self.areas and not self.provinces:
            raise ValueError("give index and count, or areas and/or provinces")
        return self

    def spec(self) -> Shard:
        return Shard(self.index, self.count, frozenset(self.areas), frozenset(self.provinces))


class StandbySettings(_Strict):
    """Active/standby: pollers with the same shard and store, one writing (active), the others waiting."""

    enabled: bool = Field(False, description="wait as a standby while another live poller watches these nodes, "
                          "instead of refusing to start; take over when its heartbeats stop")
    check_s: float = Field(5.0, gt=0, le=300, description="how often a standby checks the active poller's "
                           "heartbeat: it takes over at most max gap (3 ICMP intervals) + check_s after the "
                           "active one's last sweep")


NATIONAL = "Toàn quốc"  # the scope's name when a deployment watches several provinces (its rate: all of theirs)


class Config(_Strict):
    """The whole config.yaml."""

    province: str = Field(min_length=1, description="the province whose communes count toward the target; or a "
                          "list of provinces, or `all` (the 34): then the figures are national, each province's "
                          "beside them, and this reads as NATIONAL")
    provinces: tuple[str, ...] = Field((), description="the provinces watched when several (set through province)")
    timezone: Timezone = "Asia/Ho_Chi_Minh"
    inventory: Path
    web: Web = Web()
    icmp: Icmp = Icmp()
    states: States = States()
    rates: Rates = Rates()
    maintenance: tuple[Maintenance, ...] = ()
    snmp: Snmp = Snmp()
    snmp_profiles: dict[str, SnmpProfile] = Field(default_factory=dict)
    store: StoreSettings = StoreSettings()
    email: EmailSettings | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shard: ShardSettings | None = Field(None, description="the nodes this poller watches when several share one "
                                        "store (default: every node)")
    standby: StandbySettings = StandbySettings()
    strict_inventory: bool = Field(False, description="refuse an inventory with warnings (an unknown commune "
                                   "code, nodes of another province), at start and on reload, as `check --strict`")

    @model_validator(mode="before")
    @classmethod
    def _several_provinces(cls, data: Any) -> Any:
        """``province: [A, B]`` or ``province: all``: the provinces watched, and the national scope's name."""
        if not isinstance(data, dict) or "provinces" in data:
            return data
        value = data.get("province")
        if isinstance(value, list):
            if not value or not all(isinstance(v, str) and v.strip() for v in value):
                raise ValueError("province: a name, a list of names, or all")
            if len(value) == 1:
                return {**data, "province": value[0]}
            return {**data, "province": NATIONAL, "provinces": tuple(value)}
        if isinstance(value, str) and value.strip().casefold() in ("all", "toàn quốc"):
            from inventory.units import provinces

            return {**data, "province": NATIONAL, "provinces": tuple(name for _, name in provinces())}
        return data

    @property
    def national(self) -> bool:
        """Several provinces watched: the headline is the rate over all their communes."""
        return bool(self.provinces)

    @property
    def shard_spec(self) -> Shard:
        """The nodes this poller watches (every node without ``shard``)."""
        return self.shard.spec() if self.shard is not None else Shard()

    def owns(self, node: Node) -> bool:
        """Whether this poller probes ``node`` (pollers sharing a store each probe their own shard)."""
        return self.shard is None or self.shard_spec.owns(node.code, node.area, node.province)

    @property
    def default_province(self) -> str | None:
        """The province of an inventory node that names none: the config's one, none when several."""
        return None if self.national else self.province

    @property
    def watched(self) -> tuple[str, ...]:
        """The provinces whose communes count: the list, or the one province."""
        return self.provinces or (self.province,)

    # Where the config came from; inventory paths are relative to it.
    _source: Path = PrivateAttr(default=Path("config.yaml"))
    _web_config: WebConfigFile | None = PrivateAttr(default=None)

    @property
    def web_config(self) -> WebConfigFile | None:
        """The web configuration file's content (TLS, basic auth), when one is configured."""
        return self._web_config

    @property
    def source(self) -> Path:
        return self._source

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def inventory_path(self) -> Path:
        return self.inventory if self.inventory.is_absolute() else self.source.parent / self.inventory


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SECRET_FILE_KEYS = ("community", "auth_key", "priv_key", "password")


def _marks(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    """Record the 1-based line of every key path in a composed YAML tree."""
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value
            out[path + (key,)] = k.start_mark.line + 1
            _marks(v, path + (key,), out)
            out[path + (key,)] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _marks(item, path + (i,), out)


MAX_YAML_NODES = 100_000  # after alias expansion: a config is a few hundred; a "billion laughs" is refused


def _tree_problems(tree: yaml.Node, path: Path) -> list[str]:
    """Duplicate keys (the last would silently win) and a document too large once aliases are expanded."""
    problems: list[str] = []
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if depth > 200:
            raise _TooDeep(node.start_mark.line + 1)
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode):
                    if k.value in seen:
                        problems.append(f"{path}:{k.start_mark.line + 1}: {k.value}: duplicate key (also at line "
                                        f"{seen[k.value]}); give each key once")
                    seen.setdefault(k.value, k.start_mark.line + 1)
                total += size(k, depth + 1) + size(v, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item, depth + 1) for item in node.value)
        sizes[id(node)] = min(total, MAX_YAML_NODES + 1)
        return sizes[id(node)]

    try:
        if size(tree, 0) > MAX_YAML_NODES:
            problems.append(f"{path}:1: more than {MAX_YAML_NODES:,} values once aliases are expanded "
                            "(a YAML alias bomb?): refused")
    except _TooDeep as e:
        problems.append(f"{path}:{e.line}: nested more than 200 levels deep: refused")
    return problems


def _scalars(node: yaml.Node | None) -> Iterator[yaml.ScalarNode]:
    """Every scalar of a composed tree, each once (aliases are shared nodes)."""
    seen: set[int] = set()
    stack = [node] if node is not None else []
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, yaml.ScalarNode):
            yield n
        elif isinstance(n, yaml.MappingNode):
            stack.extend(x for kv in n.value for x in kv)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)


class _TooDeep(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


def _dotted(path: tuple[Any, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _resolve_secrets(
    data: Any, path: tuple[Any, ...], base: Path, problems: list[tuple[tuple[Any, ...], str]]
) -> Any:
    """Expand ``${ENV}`` in strings and ``<key>_file`` for secret keys, recording problems by path."""
    if isinstance(data, dict):
        out: dict[Any, Any] = {}
        for key, value in data.items():
            if isinstance(key, str) and key.endswith("_file") and key[: -len("_file")] in _SECRET_FILE_KEYS:
                real = key[: -len("_file")]
                if real in data:
                    problems.append((path + (key,), f"give {real} or {key}, not both"))
                    continue
                file = Path(str(value))
                file = file if file.is_absolute() else base / file
                try:
                    out[real] = file.read_text(encoding="utf-8").strip()
                except OSError as e:
                    problems.append((path + (key,), f"cannot read {file}: {e.strerror}"))
                continue
            out[key] = _resolve_secrets(value, path + (key,), base, problems)
        return out
    if isinstance(data, list):
        return [_resolve_secrets(v, path + (i,), base, problems) for i, v in enumerate(data)]
    if isinstance(data, str) and "${" in data:
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in os.environ:
                problems.append((path, f"environment variable {name} is not set"))
                return ""
            return os.environ[name]
        return _ENV.sub(sub, data)
    return data


def _nul_problems(data: Any, path: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], str]]:
    """A NUL character is in no file name, host or name: refused where it stands, never passed on."""
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in _nul_problems(v, path + (k,))]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in _nul_problems(v, path + (i,))]
    return [(path, "contains a NUL character")] if isinstance(data, str) and "\x00" in data else []


def _describe(err: Any) -> str:
    msg = str(err["msg"])
    msg = msg.removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    given = err.get("input")
    plain = given is not None and not isinstance(given, dict | list)
    if plain and err["type"] not in ("model_type", "dict_type", "value_error"):
        # Never echo what may be a secret.
        secretish = any(s in str(p) for p in err["loc"] for s in _SECRET_FILE_KEYS)
        if not secretish:
            return f"{msg}, got {given!r}"
    return msg


M = TypeVar("M", bound=BaseModel)


def _load_model(path: Path, model: type[M], what: str, *, update: dict[str, Any] | None = None) -> M:
    """Read YAML ``path`` into ``model``; every problem is a ConfigError line with file:line: key."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except OSError as e:
        raise ConfigError([f"{path}: cannot read: {e.strerror}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError([f"{path}:{line}: not valid UTF-8 (save the file as UTF-8)"]) from None
    try:
        tree = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else 0
        raise ConfigError([f"{path}:{line}: not valid YAML: {e.problem}"]) from None
    except RecursionError:
        raise ConfigError([f"{path}:1: nested too deeply to read: refused"]) from None
    if tree is not None:
        problems = _tree_problems(tree, path)
        if problems:
            raise ConfigError(problems)
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else 0
        raise ConfigError([f"{path}:{line}: not valid YAML: {e.problem}"]) from None
    except ValueError as e:  # e.g. an integer of thousands of digits (Python refuses to convert it)
        line = next((n.start_mark.line + 1 for n in _scalars(tree) if len(n.value) > 1000), 1)
        raise ConfigError([f"{path}:{line}: a value cannot be read: {str(e).split(';')[0]}"]) from None
    if data is None and update is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}:1: expected a mapping of keys ({what})"])
    lines: dict[tuple[Any, ...], int] = {}
    if tree is not None:
        _marks(tree, (), lines)

    def where(loc: tuple[Any, ...]) -> str:
        for i in range(len(loc), -1, -1):
            if loc[:i] in lines:
                return f"{path}:{lines[loc[:i]]}"
        return str(path)

    secret_problems: list[tuple[tuple[Any, ...], str]] = []
    data = _resolve_secrets(data, (), path.parent, secret_problems)
    secret_problems += _nul_problems(data, ())
    problems = [f"{where(loc)}: {_dotted(loc)}: {msg}" for loc, msg in secret_problems]
    data.update(update or {})
    try:
        value = model.model_validate(data)
    except ValidationError as e:
        for err in e.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            problems.append(f"{where(loc)}: {_dotted(loc)}: {_describe(err)}")
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return value


def load_config(path: str | Path, *, inventory: str | Path | None = None,
                web_config: str | Path | None = None) -> Config:
    """Parse and validate ``path``; raise ConfigError listing every problem with file:line: key.

    ``inventory`` and ``web_config`` replace the file's ``inventory`` and ``web.config_file``;
    the web configuration file is read and checked too (``Config.web_config``).
    """
    path = Path(path)
    update: dict[str, Any] = {}
    if inventory is not None:
        update["inventory"] = str(Path(inventory).resolve())
    cfg = _load_model(path, Config, "province, inventory, icmp, ...", update=update)
    cfg._source = path
    file = Path(web_config).resolve() if web_config is not None else cfg.web.config_file
    if file is not None:
        file = file if file.is_absolute() else path.parent / file
        cfg._web_config = load_web_config(file)
    return cfg


def load_web_config(path: str | Path) -> WebConfigFile:
    """The web configuration file (exporter-toolkit's format); ConfigError names file:line: key."""
    path = Path(path)
    web = _load_model(path, WebConfigFile, "tls_server_config, basic_auth_users, http_server_config")
    web._source = path
    return web
