"""Outbound channels: the effects outbox, e-mail, X and Slack replies, assignment cards and escaping per medium."""
