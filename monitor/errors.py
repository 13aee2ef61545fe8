"""Every error tslcd reports to a person, in one shallow tree; the ``tslcd`` command catches the root.

    TslcdError                    a problem said in one clear message, never a traceback
    ├── ConfigError               config.yaml: every problem, each with file:line: key
    ├── InventoryError            the inventory: every problem, each with file:line (or CSV row)
    ├── SkeletonError             `inventory import`: unknown province, or its unit list is missing
    ├── StoreError                the history store cannot be opened or used (says which store and why)
    │   └── StoreDamaged          ... because it is damaged or unwritable: never replaced (exit status 3)
    ├── ListenError               the HTTP address cannot be bound (says which and what to do)
    ├── IcmpPermissionError       no raw nor datagram ICMP socket may be opened (says how to fix it)
    ├── MailError                 a failed SMTP send, classified by MailErrorKind (never holds the password)
    └── LabError, AgentError      the demo's and the tests' namespaces and SNMP agents

Each class also derives from the built-in error it used to be (ValueError, RuntimeError,
OSError), so code that catches those keeps working. A failed probe is a result, never one of
these: icmp and snmp turn their libraries' errors into results at the edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum


class TslcdError(Exception):
    """The root: a problem the ``tslcd`` command prints as one message and an exit status."""

    exit_status: int | None = None  # None: the command's own status for a problem


class ConfigError(TslcdError, ValueError):
    """Every problem found in a config file, one per line, each with file:line: key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class InventoryError(TslcdError, ValueError):
    """An inventory that cannot be used; ``problems`` holds all of them, in file order."""

    def __init__(self, problems: Sequence[object]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def __reduce__(self) -> tuple[type[InventoryError], tuple[list[object]]]:
        return type(self), (self.problems,)  # pickled whole (an inventory loaded in another process)


class SkeletonError(TslcdError, ValueError):
    """The province is unknown, or has no unit in the bundled list."""


class StoreError(TslcdError, RuntimeError):
    """The history store cannot be opened or used; the message says which store and why."""


class StoreDamaged(StoreError):
    """The history store is there but damaged or unwritable: refused, never replaced (exit status 3)."""

    exit_status = 3


class RunRefused(StoreError):
    """Another live poller writes this store for nodes this one would watch: ``active`` says which one."""

    def __init__(self, message: str, active: str) -> None:
        super().__init__(message)
        self.active = active


class Superseded(RunRefused):
    """Refused after it started: this run's nodes are watched by a newer run (a standby took over), so its writes
    are refused; ``active`` says which run."""


class MaintenanceError(TslcdError, ValueError):
    """A maintenance window that cannot be declared or ended as asked (the message says why and what to do)."""


class OutageNoteError(TslcdError, ValueError):
    """A note or an exclusion that cannot be given to an outage as asked (the message says why)."""


class ListenError(TslcdError, OSError):
    """The HTTP address cannot be bound; the message says which and what to do."""


class IcmpPermissionError(TslcdError, RuntimeError):
    """Neither a raw nor a datagram ("ping") ICMP socket may be opened; the message says how to fix it."""

    exit_status = 2


class MailErrorKind(StrEnum):
    """Bounded classification of a failed send (the ``reason`` label of tslcd_email_failures_total)."""

    CONNECT = "connect"  # refused, unreachable, timed out, unknown host, connection dropped
    TLS = "tls"  # handshake failed, certificate not trusted or for another name
    AUTH = "auth"  # username or password refused
    UNSUPPORTED = "unsupported"  # the server lacks STARTTLS or a usable AUTH mechanism
    TEMPORARY = "temporary"  # a 4xx reply: try again later
    REJECTED = "rejected"  # a 5xx reply to the sender, a recipient or the data
    PROTOCOL = "protocol"  # anything else the server or the library did not expect


class MailError(TslcdError):
    """A failed send, classified; ``str()`` is safe to log and to store (no password, no base64 of one)."""

    def __init__(self, kind: MailErrorKind, message: str, *, code: int | None = None) -> None:
        self.kind = kind
        self.code = code
        super().__init__(f"{kind.value}: {message}")

    @property
    def temporary(self) -> bool:
        """Worth retrying soon (the outbox retries every kind, but backs off the same way)."""
        return self.kind in (MailErrorKind.CONNECT, MailErrorKind.TEMPORARY, MailErrorKind.PROTOCOL)


class LabError(TslcdError, RuntimeError):
    """A command of the lab (test namespaces) failed; the message names the command and gives its stderr."""


class AgentError(TslcdError, RuntimeError):
    """A local SNMP agent could not be started or did not answer in time; says which, where, and its last log."""
