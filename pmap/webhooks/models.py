"""Webhook delivery records (filled in by the webhooks work)."""
