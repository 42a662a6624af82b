"""Normalized findings, imports, jobs and rules (filled in by the findings work)."""
