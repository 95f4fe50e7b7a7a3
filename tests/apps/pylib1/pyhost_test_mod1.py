VALUE = "mod1"
