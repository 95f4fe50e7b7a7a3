MESSAGE = "version-1"
