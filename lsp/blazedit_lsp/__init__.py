"""blazedit's language server: streams daemon edits into the editor as incremental text edits (no torch)."""
