"""Desk operations: assignment, SLA clocks and business hours, scheduled jobs, staff actions, permissions, knowledge, privacy and replies."""
