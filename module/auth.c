/* auth.c - mod_wsgi's auth scripts: WSGIAuthUserScript behind
 * `AuthBasicProvider wsgi` / `AuthDigestProvider wsgi`, WSGIAuthGroupScript
 * behind `Require wsgi-group`, and WSGIAccessScript as an access check.
 * Each calls a function of a Python script in an application group of the
 * Apache child (embedded, as in mod_wsgi) with a CGI-style environ. */
#include "pyhost.h"

#include "http_core.h"
#include "http_request.h"
#include "util_script.h"
#include "mod_auth.h"
#include "ap_provider.h"
#include "apr_strings.h"

/* ---- directives ------------------------------------------------------------ */

/* script-path [application-group=G]: WSGIAuthUserScript,
 * WSGIAuthGroupScript, WSGIAccessScript and WSGIDispatchScript (all four
 * name a script run in the Apache child, by default in the main
 * interpreter, as mod_wsgi does). */
const char *pyh_auth_script_directive(cmd_parms *cmd, void *dconf,
                                      const char *args)
{
    pyh_dir_conf *c = dconf;
    pyh_auth_script *a = apr_pcalloc(cmd->pool, sizeof(*a));
    const char *name, *value = NULL;
    int got;
    a->path = ap_getword_conf(cmd->pool, &args);
    if (!*a->path)
        return apr_psprintf(cmd->pool, "%s needs a script path",
                            cmd->cmd->name);
    a->path = ap_server_root_relative(cmd->pool, a->path);
    a->application_group = "%{GLOBAL}";
    while ((got = pyh_compat_parse_option(cmd->pool, &args, &name, &value))) {
        if (got < 0 || strcmp(name, "application-group") || !*value)
            return apr_psprintf(cmd->pool,
                                "%s: unknown option '%s' (known: "
                                "application-group=)",
                                cmd->cmd->name, name);
        a->application_group = value;
    }
    if (!strcmp(cmd->cmd->name, "WSGIAuthUserScript"))
        c->auth_user_script = a;
    else if (!strcmp(cmd->cmd->name, "WSGIAuthGroupScript"))
        c->auth_group_script = a;
    else if (!strcmp(cmd->cmd->name, "WSGIDispatchScript"))
        c->dispatch_script = a;
    else
        c->access_script = a;
    return NULL;
}

/* ---- calling the script ------------------------------------------------------ */

/* A CGI-style environ, as mod_wsgi gives its auth scripts: the request's
 * CGI variables, without touching r->subprocess_env. */
static PyObject *auth_environ(request_rec *r, const char *group)
{
    apr_table_t *saved = r->subprocess_env;
    const apr_array_header_t *arr;
    const apr_table_entry_t *e;
    PyObject *env = PyDict_New();
    int i;
    if (!env)
        return NULL;
    r->subprocess_env = apr_table_copy(r->pool, saved);
    ap_add_common_vars(r);
    ap_add_cgi_vars(r);
    arr = apr_table_elts(r->subprocess_env);
    r->subprocess_env = saved;
    e = (const apr_table_entry_t *)arr->elts;
    for (i = 0; i < arr->nelts; i++) {
        PyObject *v;
        if (!e[i].key || !e[i].val)
            continue;
        if (!(v = PyUnicode_DecodeLatin1(e[i].val, strlen(e[i].val), NULL))
            || PyDict_SetItemString(env, e[i].key, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(env);
            return NULL;
        }
        Py_DECREF(v);
    }
    if (PyDict_SetItemString(env, "mod_wsgi.application_group",
                             PyUnicode_FromString(group)) < 0) {
        Py_DECREF(env);
        return NULL;
    }
    return env;
}

#define AUTH_FAILED (-100) /* the call itself failed (logged) */

/* Reads a script function's result while the GIL of its interpreter is
 * held; returns what the caller acts on. */
typedef int (*auth_digest_fn)(request_rec *r, const pyh_auth_script *a,
                              PyObject *res, void *ctx);

/* Calls `func` of script a with (environ, *args built from fmt) and hands
 * the result to digest; AUTH_FAILED when anything failed (logged). */
static int auth_call(request_rec *r, const pyh_auth_script *a,
                     const char *func, auth_digest_fn digest, void *ctx,
                     const char *fmt, ...)
{
    const char *group = !strcmp(a->application_group, "%{GLOBAL}")
                            ? "" : a->application_group;
    PyObject *fn, *env = NULL, *args = NULL, *all = NULL, *res = NULL;
    pyh_interp *in;
    int status, out = AUTH_FAILED;
    Py_ssize_t i;
    va_list ap;

    if (!pyh_python_ready()) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PYH0121: %s() of '%s': Python did not start in this "
                      "process (auth scripts run in Apache's children, as in "
                      "mod_wsgi; WSGIRestrictEmbedded On forbids that)",
                      func, a->path);
        return AUTH_FAILED;
    }
    if (!(in = pyh_interp_acquire(group, r->server)))
        return AUTH_FAILED;
    if (!(fn = pyh_script_callable(in, r, a->path, func, 1, &status))) {
        pyh_interp_release(in);
        return AUTH_FAILED;
    }
    va_start(ap, fmt);
    args = Py_VaBuildValue(fmt, ap);
    va_end(ap);
    if (args && (env = auth_environ(r, group))
        && (all = PyTuple_New(PyTuple_GET_SIZE(args) + 1))) {
        PyTuple_SET_ITEM(all, 0, Py_NewRef(env));
        for (i = 0; i < PyTuple_GET_SIZE(args); i++)
            PyTuple_SET_ITEM(all, i + 1, Py_NewRef(PyTuple_GET_ITEM(args, i)));
        res = PyObject_Call(fn, all, NULL);
    }
    if (res)
        out = digest(r, a, res, ctx);
    else
        pyh_log_exception(in, r, r->server,
                          apr_psprintf(r->pool, "PYH0120: exception in %s() "
                                       "of '%s'", func, a->path));
    Py_XDECREF(res);
    Py_XDECREF(all);
    Py_XDECREF(args);
    Py_XDECREF(env);
    Py_DECREF(fn);
    pyh_interp_release(in);
    return out;
}

/* True, False or None: 1, 0, -1; anything else AUTH_FAILED (logged). */
static int auth_tristate(request_rec *r, const pyh_auth_script *a,
                         PyObject *res, void *func)
{
    if (res == Py_True)
        return 1;
    if (res == Py_False)
        return 0;
    if (res == Py_None)
        return -1;
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                  "PYH0122: %s() of '%s' must return True, False or None",
                  (const char *)func, a->path);
    return AUTH_FAILED;
}

/* ---- authn provider "wsgi" ------------------------------------------------- */

static const pyh_auth_script *auth_script_of(request_rec *r, int which)
{
    const pyh_dir_conf *c =
        ap_get_module_config(r->per_dir_config, &pyhost_module);
    return which == 0 ? c->auth_user_script
           : which == 1 ? c->auth_group_script : c->access_script;
}

static authn_status auth_check_password(request_rec *r, const char *user,
                                        const char *password)
{
    const pyh_auth_script *a = auth_script_of(r, 0);
    if (!a) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PYH0123: AuthBasicProvider wsgi needs a "
                      "WSGIAuthUserScript for this location");
        return AUTH_GENERAL_ERROR;
    }
    switch (auth_call(r, a, "check_password", auth_tristate,
                      "check_password", "(ss)", user, password)) {
    case 1:
        return AUTH_GRANTED;
    case 0:
        return AUTH_DENIED;
    case -1:
        return AUTH_USER_NOT_FOUND;
    default:
        return AUTH_GENERAL_ERROR;
    }
}

/* get_realm_hash(): the hex MD5 of "user:realm:password" or None. */
static int auth_realm_hash(request_rec *r, const pyh_auth_script *a,
                           PyObject *res, void *ctx)
{
    const char *h;
    if (res == Py_None)
        return -1;
    if (!PyUnicode_Check(res) || !(h = PyUnicode_AsUTF8(res))) {
        PyErr_Clear();
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PYH0122: get_realm_hash() of '%s' must return a str "
                      "or None",
                      a->path);
        return AUTH_FAILED;
    }
    *(char **)ctx = apr_pstrdup(r->pool, h);
    return 1;
}

static authn_status auth_get_realm_hash(request_rec *r, const char *user,
                                        const char *realm, char **rethash)
{
    const pyh_auth_script *a = auth_script_of(r, 0);
    if (!a) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PYH0123: AuthDigestProvider wsgi needs a "
                      "WSGIAuthUserScript for this location");
        return AUTH_GENERAL_ERROR;
    }
    switch (auth_call(r, a, "get_realm_hash", auth_realm_hash, rethash,
                      "(ss)", user, realm)) {
    case 1:
        return AUTH_USER_FOUND;
    case -1:
        return AUTH_USER_NOT_FOUND;
    default:
        return AUTH_GENERAL_ERROR;
    }
}

static const authn_provider auth_authn_provider = {
    &auth_check_password, &auth_get_realm_hash
};

/* ---- authz provider "wsgi-group" --------------------------------------------- */

/* groups_for_user(): 1 when one of the groups is on the Require line, 0
 * when none is, -1 for None. */
static int auth_in_groups(request_rec *r, const pyh_auth_script *a,
                          PyObject *res, void *require_line)
{
    PyObject *it, *g;
    int found = 0;
    if (res == Py_None)
        return -1;
    if (!(it = PyObject_GetIter(res))) {
        PyErr_Clear();
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PYH0122: groups_for_user() of '%s' must return an "
                      "iterable of group names or None",
                      a->path);
        return AUTH_FAILED;
    }
    while (!found && (g = PyIter_Next(it))) {
        const char *name = PyBytes_Check(g)     ? PyBytes_AsString(g)
                           : PyUnicode_Check(g) ? PyUnicode_AsUTF8(g)
                                                : NULL;
        const char *line = require_line, *w;
        if (!name)
            PyErr_Clear();
        while (name && !found && *(w = ap_getword_conf(r->pool, &line)))
            found = !strcmp(w, name);
        Py_DECREF(g);
    }
    PyErr_Clear();
    Py_DECREF(it);
    return found;
}

static authz_status auth_check_group(request_rec *r, const char *require_line,
                                     const void *parsed)
{
    const pyh_auth_script *a = auth_script_of(r, 1);
    const pyh_dir_conf *c =
        ap_get_module_config(r->per_dir_config, &pyhost_module);
    (void)parsed;
    if (!r->user)
        return AUTHZ_DENIED_NO_USER;
    if (!a) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PYH0123: Require wsgi-group needs a "
                      "WSGIAuthGroupScript for this location");
        return AUTHZ_GENERAL_ERROR;
    }
    switch (auth_call(r, a, "groups_for_user", auth_in_groups,
                      (void *)require_line, "(s)", r->user)) {
    case 1:
        return AUTHZ_GRANTED;
    case 0:
    case -1:
        /* WSGIGroupAuthoritative Off: leave the decision to other
         * providers of the <RequireAny> around this one. */
        return c->group_authoritative == 0 ? AUTHZ_NEUTRAL : AUTHZ_DENIED;
    default:
        return AUTHZ_GENERAL_ERROR;
    }
}

static const authz_provider auth_authz_provider = {&auth_check_group, NULL};

/* ---- WSGIAccessScript ---------------------------------------------------- */

static int auth_access_checker(request_rec *r)
{
    const pyh_auth_script *a = auth_script_of(r, 2);
    const char *host;
    if (!a)
        return DECLINED;
    host = ap_get_useragent_host(r, REMOTE_HOST, NULL);
    if (!host)
        host = r->useragent_ip;
    switch (auth_call(r, a, "allow_access", auth_tristate, "allow_access",
                      "(s)", host)) {
    case 1:
        return OK;
    case -1:
        return DECLINED;
    case 0:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "PYH0124: access to %s denied by WSGIAccessScript '%s'",
                      r->uri, a->path);
        return HTTP_FORBIDDEN;
    default:
        return HTTP_INTERNAL_SERVER_ERROR;
    }
}

void pyh_auth_register_hooks(apr_pool_t *p)
{
    ap_register_auth_provider(p, AUTHN_PROVIDER_GROUP, "wsgi",
                              AUTHN_PROVIDER_VERSION, &auth_authn_provider,
                              AP_AUTH_INTERNAL_PER_CONF);
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "wsgi-group",
                              AUTHZ_PROVIDER_VERSION, &auth_authz_provider,
                              AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_check_access(auth_access_checker, NULL, NULL, APR_HOOK_MIDDLE,
                         AP_AUTH_INTERNAL_PER_CONF);
}
