import sys

from perfd.cli.client import main

if __name__ == "__main__":  # not when a worker process loads this module as __mp_main__
    sys.exit(main())
