import sys

from abcweb.cli import main

sys.exit(main())
