"""Webhook secrets, inbound receivers and delivery records."""
