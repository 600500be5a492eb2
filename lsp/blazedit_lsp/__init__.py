"""blazedit's language server: streams daemon edits into the editor as incremental text edits (no torch)."""

from importlib.metadata import version

__version__ = version("blazedit-lsp")
