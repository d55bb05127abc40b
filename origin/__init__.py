"""The eaves origin: full generation behind the edge, streamed, written back to the edge's KV."""
