"""Contact and tag actions fed by SQS: one batch of the actions function (``batch``, with per-user
``ordering``), the effects in Keap (``service``, ``tags``), the per-user record (``users``, ``table``), and
holding the queue while Keap cannot serve (``hold``). The messages and the DLQ are ``keaplink.contract``.

Imports ``keaplink.keap`` and the shared modules. The Keap session it is handed knows how to get a token;
nothing here imports ``connection`` or ``admin``.
"""
