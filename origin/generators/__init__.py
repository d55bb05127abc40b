"""Generators: the origin's port to a language model. One module per backend."""
