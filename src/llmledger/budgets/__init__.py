"""Budgets: limits per scope and period, reservations that hold under concurrency."""
