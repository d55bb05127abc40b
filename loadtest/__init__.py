"""Load tests: locust scenarios against the edge (``locustfile.py``) and the runner behind `eaves loadtest`."""
