# Raises from a nested call, so its traceback has several lines.
def helper(n):
    if n == 0:
        raise ValueError("dropin failure marker")
    return helper(n - 1)


def application(environ, start_response):
    helper(2)
