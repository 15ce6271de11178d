"""The admin panel behind API Gateway: what each route does (``routes``), who may use it (``auth``), the
HTML (``pages``), helpers over the request (``request``), and the Powertools glue that puts them together
with typed-error pages (``web``).

Imports ``keaplink.connection`` (the token, its store, the OAuth client, the refresh path) and the shared
modules. Resuming the actions queue after a reconnect is handed in as a function: nothing here imports
``actions``.
"""
