VALUE = "mod2"
