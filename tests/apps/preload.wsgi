# Loaded by WSGIImportScript when a child starts, before any request: leaves a
# mark on sys (seen by preload_check.wsgi in the same interpreter) and a file.
import os
import sys
import time

sys.pyhost_test_preloaded = {"pid": os.getpid(), "at": time.time()}
with open(os.path.join("@STATE_DIR@", "preload-%d" % os.getpid()), "a") as f:
    f.write("preloaded\n")
