"""The local emulator: the edge core on CPython with LMDB, httpx and uvicorn. Only this package
(and the origin) import those libraries."""
