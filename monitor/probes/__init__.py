"""The probes: ICMP sweeps (icmp) and SNMP polls (snmp). The only code that sends packets to nodes."""
