"""SNMP polling over pysnmp: the poller, its OIDs, profile handling, and the pysnmp patches kept apart."""

import importlib
import sys

# pysnmp imports its MIB compiler, pysmi, and with it requests, urllib3, ply and the rest (about 9 MB of every
# process that polls), only to offer compiling MIB text files. tslcd names no MIB object and resolves none
# (its OIDs are numbers, ``oids``), so pysmi is kept out while pysnmp's compiler module is imported: pysnmp
# then installs its own "no MIB compiler" stand-in, which it consults only when asked to resolve a name.
# pysmi stays importable afterwards for anything else in the process.
if "pysnmp.smi.compiler" not in sys.modules:
    _absent = "pysmi" not in sys.modules  # (imported already, or kept out by someone else: left as it is)
    if _absent:
        sys.modules["pysmi"] = None  # type: ignore[assignment]  # an import of pysmi fails with ImportError
    try:
        importlib.import_module("pysnmp.smi.compiler")
    finally:
        if _absent:
            del sys.modules["pysmi"]

from monitor.probes.snmp.poller import SnmpPoller  # noqa: E402
from monitor.probes.snmp.profiles import describe_profile  # noqa: E402

__all__ = ["SnmpPoller", "describe_profile"]
