"""Load and fault scenarios against the local stack (127.0.0.1 only)."""
