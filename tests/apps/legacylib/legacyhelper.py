NAME = "legacy helper from WSGIPythonPath"
