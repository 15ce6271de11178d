"""Keap sandbox: a local stand-in for Keap's OAuth2 server and v2 REST API.

Run it with ``python -m keap_sandbox`` or start it from tests with
:func:`keap_sandbox.testing.start_sandbox`. See ``server.py`` for the modelled behaviour and the
design choices that Keap's documentation leaves open.
"""

from keap_sandbox.state import SandboxConfig, SandboxState

__all__ = ["SandboxConfig", "SandboxState", "__version__"]

__version__ = "0.1.0"
