"""blazedit's daemon and engine: the only distribution that imports torch."""
