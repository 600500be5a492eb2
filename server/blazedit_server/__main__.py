import sys

from blazedit_server.cli import main

sys.exit(main())
