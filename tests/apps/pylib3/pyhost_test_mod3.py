VALUE = "mod3"
