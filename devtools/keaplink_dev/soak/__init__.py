"""Soaks over one shared local stack: the refresh path for simulated months, and the message flow under faults."""
