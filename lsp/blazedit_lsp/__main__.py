"""`python -m blazedit_lsp`: the same as `blazedit-lsp`."""

from blazedit_lsp.cli import main

main()
