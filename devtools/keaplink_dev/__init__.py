"""Developer tooling for keaplink: run the SAM app locally on the ministack emulator (no Docker, no AWS).

Modules: :mod:`.ministack` (install/start/stop the emulator), :mod:`.deploy` (sam build/deploy),
:mod:`.invoke` (invoke a function by logical id), :mod:`.logs` (follow invocations), :mod:`.aws` (helpers).
"""
