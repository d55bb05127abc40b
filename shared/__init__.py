"""Code both the edge and the origin use: cache keys, wire types, signing, KV rules, the intent model."""
