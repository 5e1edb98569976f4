"""Monitoring proven: alert rules under promtool, and a real Prometheus scraping the system."""
