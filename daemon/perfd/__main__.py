import sys

from perfd.client import main

sys.exit(main())
