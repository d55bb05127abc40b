"""The eaves edge: a platform-neutral request handler plus thin runtime adapters.

Only ``edge/entry.py`` and ``edge/workers/`` may import ``js``, ``pyodide`` or ``workers``;
only ``edge/emulator/`` may import starlette, httpx or lmdb. Everything else is standard library.
"""
