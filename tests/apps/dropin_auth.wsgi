# mod_wsgi's auth script examples (its docs' "spy" / "secret-agents"),
# plus a digest realm hash and an access check.
import hashlib


def check_password(environ, user, password):
    if user == "spy":
        return password == "secret"
    if user == "clerk":
        return password == "paper"
    if user == "boom":
        raise RuntimeError("auth script failure marker")
    return None


def get_realm_hash(environ, user, realm):
    if user == "spy":
        return hashlib.md5(("%s:%s:secret" % (user, realm)).encode()).hexdigest()
    return None


def groups_for_user(environ, user):
    if user == "spy":
        return [b"secret-agents"]
    return ["clerks"]


def allow_access(environ, host):
    if environ.get("HTTP_X_AGENT") == "blocked":
        return False
    return host == "127.0.0.1" and environ["REQUEST_URI"].startswith("/access")
