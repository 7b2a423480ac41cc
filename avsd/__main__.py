import sys

from avsd.cli import main

sys.exit(main())
