"""Keap's HTTP API: the boundary that turns answers into typed errors (``http``), the REST v2 calls keaplink
makes (``client``), and how a caller stays within Keap's limits (``session``, ``rate_limit``, ``throttle``).

Imports only ``keaplink.errors`` and ``keaplink.observability``: where tokens come from is the caller's
business (an :class:`~keaplink.keap.session.AuthSource`).
"""
