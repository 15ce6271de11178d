"""``python -m keaplink_dev.soak``: the refresh soak, then the message soak (``--help``)."""

import sys

from keaplink_dev.soak.refresh import main

sys.exit(main())
