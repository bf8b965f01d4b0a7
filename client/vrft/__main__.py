import sys

from vrft.cli import main

sys.exit(main())
