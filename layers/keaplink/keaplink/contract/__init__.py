"""What crosses keaplink's queues, shared by the Lambda layer and the client distribution (one copy): the
messages and their JSON Schema (``messages``, ``schemas/``), the dead letter and the DLQ's safe reads and
redrives (``dead_letters``), SQS's size limit (``sizes``). Runs on Python 3.10 and newer (the client's floor).
"""
