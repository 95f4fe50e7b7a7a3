# pyhost serve must refuse to start this script: it does not compile.
def application(environ, start_response)
    return []
