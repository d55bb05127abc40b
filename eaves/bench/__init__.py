"""`eaves bench`: how fast the edge is, measured beside the ceiling of its own stack, on this machine."""
