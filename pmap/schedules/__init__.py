"""Schedules: cron expressions on integrations, and the scheduler that enqueues what is due, once."""
