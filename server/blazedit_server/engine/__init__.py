"""Multi-layer speculative decoding for whole-file edits (prompt lookup -> draft model -> target)."""
