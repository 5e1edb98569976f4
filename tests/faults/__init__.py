"""Fault tests: crash, cut off and poison the real system; nothing accepted may be lost."""
