import sys

from perfd.cli.client import main

sys.exit(main())
