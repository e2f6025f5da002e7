"""Operator and staff surfaces: the `helpdesk` command line, wiring of a process, the demo."""
