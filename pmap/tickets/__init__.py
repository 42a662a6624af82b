"""Tickets: opening a ticket for a finding on a work tracker, the links between tickets and findings, and
the ticket status changes the trackers' deliveries report (a done ticket resolves its open finding).

The webhooks domain receives and verifies deliveries and hands them to :mod:`pmap.tickets.processing`;
nothing here imports the webhooks domain.
"""
