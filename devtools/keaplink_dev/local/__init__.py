"""Running keaplink locally: the emulator, the stack, the API front, sam local, the Lambda image, and the
runtime helpers the tests, the soak and the bench share (moto server, Lambda registrations, the SQS poller)."""
