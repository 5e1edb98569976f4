"""Tests that cross services: end to end against the real local system, and deploy files."""
