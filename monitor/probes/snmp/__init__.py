"""SNMP polling over pysnmp: the poller, its OIDs, profile handling, and the pysnmp patches kept apart."""

from monitor.probes.snmp.poller import SnmpPoller
from monitor.probes.snmp.profiles import describe_profile

__all__ = ["SnmpPoller", "describe_profile"]
