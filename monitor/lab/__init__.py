"""Lab code for the demo, the tests and the benchmarks: a simulated province, test namespaces, local SNMP agents.

The product never imports it (an import-linter contract in pyproject.toml); it packets only
loopback and the namespaces it creates itself, behind blackhole guard routes (netns).
"""
