"""Load and fault runs against the edge (127.0.0.1 only): locust scenarios (``locustfile.py``), the runner
behind `eaves loadtest`, and the fault run behind `eaves faults`."""
