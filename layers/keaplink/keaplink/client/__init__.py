"""The application's side of keaplink: publishing events (``publish``) and the ``keaplink`` command line
(``cli``, ``pause``). Not in the Lambda layer; the client distribution (the root ``pyproject.toml``) ships it
with ``keaplink.contract`` and the small shared modules it imports, for Python 3.10 and newer.
"""
