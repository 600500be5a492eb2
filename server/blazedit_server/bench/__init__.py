"""`blazedit bench`: every strategy and the reference decoders side by side on the same edit tasks."""
