"""Components: XEP-0114 external components (accept.py) and the routes of component domains,
external or in-process (route.py)."""
