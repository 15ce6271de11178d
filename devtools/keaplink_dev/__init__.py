"""Developer tooling for keaplink: run the SAM app locally on the ministack emulator (no Docker, no AWS).

Modules: :mod:`.ministack` (install/start/stop the emulator), :mod:`.deploy` (sam build/deploy),
:mod:`.invoke` (invoke a function by logical id), :mod:`.logs` (follow invocations), :mod:`.aws` (helpers),
:mod:`.runtime` (the project's Python version), and for ``sam local`` (Docker): :mod:`.sam_local`
(sam-env.json, ``make sam-invoke``/``sam-api``), :mod:`.relay` (containers to the loopback-only stack),
:mod:`.lambda_image` (AWS's base image or a local stand-in).
"""
