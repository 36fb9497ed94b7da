"""Shared training: torch networks of the IR, package-shipped data, trainers and schedules,
used by proxies, drivers and commands alike (torch is imported by the modules, not here)."""
