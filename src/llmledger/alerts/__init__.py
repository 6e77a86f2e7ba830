"""Alerts: thresholds and forecasts reached, notified once in-app, by email and webhook."""
