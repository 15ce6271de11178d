"""keaplink: a web application's own Keap (Infusionsoft) CRM connection, run on AWS Lambda.

The package is the shared layer: configuration, the token store, the Keap client and the domain logic.
Handlers under ``functions/`` stay thin and call one function of this package each. The client distribution
(``client``, ``contract`` and the modules they import) is built from the same files.
"""

__version__ = "0.1.0"
