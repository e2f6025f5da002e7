"""Intake: the InboundMessage contract, channel adapters and the queue they feed."""
