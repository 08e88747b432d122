import sys

from steerbridge.bridge.cli import main

sys.exit(main())
