"""The connection to Keap: the token and its absolute times (``token``), where it is kept (``store``,
``table``, ``crypto``), the OAuth client and its credentials (``oauth``, ``credentials``), the pure decision
to refresh (``decision``), the one refresh path (``refresh``) and its hourly run (``schedule``), the OAuth
``state`` values of the connect flow (``states``), and credentials for Keap calls (``access``).

Imports ``keaplink.keap`` (the HTTP boundary) and the shared modules; never ``actions`` or ``admin``.
"""
