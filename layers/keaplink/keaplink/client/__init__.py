"""The application's side of keaplink: publishing events (``publish``) and the ``keaplink`` command line
(``cli``). Not part of the Lambda layer (the layer's build leaves this package out); installed in the
application with ``pip install`` (see the README). Needs only boto3 and fastjsonschema: the message contract
(:mod:`keaplink.actions.messages`) is shared with the consumer, so both validate alike.
"""
