"""The pure domain: states, rates, history rollups, SNMP counters and folding, the snapshot. No clock, no I/O."""
