# Fails while being loaded: every request gets a 500 and an entry with the
# traceback, and loading is tried again on the next request.
raise ImportError("pyhost-test-import-time-failure")
