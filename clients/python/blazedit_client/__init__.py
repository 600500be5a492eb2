"""Torch-free side of blazedit: the wire protocol shared by the daemon, the LSP bridge and the terminal
client."""
