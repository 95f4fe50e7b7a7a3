/* dispatch.c - mod_wsgi's per-request routing: WSGIDispatchScript (its
 * process_group(), application_group() and callable_object() choose, per
 * request, where a WSGI request runs), WSGIHandlerScript (a named Apache
 * handler whose requests run a script's handle_request, so that
 * `AddHandler name .ext` serves *.ext files through one script), and
 * WSGIRestrictProcess (which groups a location may send requests to). */
#include "pyhost.h"

#include "http_core.h"
#include "util_script.h"
#include "apr_strings.h"

/* ---- directives ------------------------------------------------------------ */

/* WSGIHandlerScript name script-path [process-group=P] [application-group=G]
 * [pass-authorization=On|Off] */
const char *pyh_handler_script_directive(cmd_parms *cmd, void *dconf,
                                         const char *args)
{
    pyh_dir_conf *c = dconf;
    pyh_handler_script *h = apr_pcalloc(cmd->pool, sizeof(*h));
    const char *handler, *name, *value = NULL;
    int got;
    handler = ap_getword_conf(cmd->pool, &args);
    h->path = ap_getword_conf(cmd->pool, &args);
    if (!*handler || !*h->path)
        return "WSGIHandlerScript needs a handler name and a script path";
    h->path = ap_server_root_relative(cmd->pool, h->path);
    h->pass_authorization = PYH_UNSET;
    while ((got = pyh_compat_parse_option(cmd->pool, &args, &name, &value))) {
        if (got > 0 && !strcmp(name, "process-group") && *value)
            h->process_group = value;
        else if (got > 0 && !strcmp(name, "application-group") && *value)
            h->application_group = value;
        else if (got > 0 && !strcmp(name, "pass-authorization")
                 && (!strcasecmp(value, "On") || !strcasecmp(value, "Off")))
            h->pass_authorization = !strcasecmp(value, "On");
        else
            return apr_psprintf(cmd->pool,
                                "WSGIHandlerScript %s: bad option '%s' "
                                "(known: process-group=, application-group=, "
                                "pass-authorization=On|Off)",
                                handler, name);
    }
    /* Copy on write: a merged parent's table must not change. */
    c->handler_scripts = c->handler_scripts
                             ? apr_hash_copy(cmd->pool, c->handler_scripts)
                             : apr_hash_make(cmd->pool);
    apr_hash_set(c->handler_scripts, handler, APR_HASH_KEY_STRING, h);
    return NULL;
}

/* WSGIRestrictProcess group... */
const char *pyh_restrict_process_directive(cmd_parms *cmd, void *dconf,
                                           const char *args)
{
    pyh_dir_conf *c = dconf;
    c->restrict_process = apr_array_make(cmd->pool, 4, sizeof(const char *));
    while (*args) {
        const char *w = ap_getword_conf(cmd->pool, &args);
        if (!*w)
            break;
        *(const char **)apr_array_push(c->restrict_process) =
            strcmp(w, "%{GLOBAL}") ? w : "";
    }
    return NULL;
}

int pyh_restrict_process_check(pyh_request *req, const char *name)
{
    const apr_array_header_t *a = req->conf.restrict_process;
    int i;
    for (i = 0; i < a->nelts; i++)
        if (!strcmp(APR_ARRAY_IDX(a, i, const char *), name))
            return OK;
    /* mod_wsgi: a 500, so that a WSGIProcessGroup in .htaccess or a
     * dispatch script cannot reach a group the admin kept apart */
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, req->r,
                  "PYH0129: process group '%s' may not be used here "
                  "(WSGIRestrictProcess)",
                  *name ? name : "%{GLOBAL}");
    return HTTP_INTERNAL_SERVER_ERROR;
}

const pyh_handler_script *pyh_handler_script_for(request_rec *r)
{
    const pyh_dir_conf *c =
        ap_get_module_config(r->per_dir_config, &pyhost_module);
    if (!r->handler || !c || !c->handler_scripts)
        return NULL;
    return apr_hash_get(c->handler_scripts, r->handler, APR_HASH_KEY_STRING);
}

/* ---- running the dispatch script ------------------------------------------- */

/* The environ mod_wsgi hands a dispatch script: the request's CGI
 * variables and headers, with mod_wsgi.process_group "" and
 * mod_wsgi.application_group the group the script runs in. */
static PyObject *dispatch_environ(pyh_request *req, const char *group)
{
    request_rec *r = req->r;
    apr_table_t *saved = r->subprocess_env;
    const apr_array_header_t *arr;
    const apr_table_entry_t *e;
    PyObject *env = PyDict_New(), *v;
    int i;
    if (!env)
        return NULL;
    r->subprocess_env = apr_table_copy(r->pool, saved);
    ap_add_common_vars(r);
    ap_add_cgi_vars(r);
    /* WSGIScriptAlias's split of the URL, not CGI's guess from the file */
    apr_table_set(r->subprocess_env, "SCRIPT_NAME", req->script_name);
    apr_table_set(r->subprocess_env, "PATH_INFO", req->path_info);
    apr_table_set(r->subprocess_env, "mod_wsgi.process_group", "");
    apr_table_set(r->subprocess_env, "mod_wsgi.application_group", group);
    arr = apr_table_elts(r->subprocess_env);
    r->subprocess_env = saved;
    e = (const apr_table_entry_t *)arr->elts;
    for (i = 0; i < arr->nelts; i++) {
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
    return env;
}

/* Calls fn(environ) if the script defines fn: 1 with *out set (a str or
 * bytes result), 0 when it is absent or returned None, -1 with a Python
 * exception set. */
static int dispatch_call(request_rec *r, PyObject *dict, const char *fn,
                         PyObject *env, const char **out)
{
    PyObject *f, *res, *b = NULL;
    int rc = 0;
    if (!(f = PyDict_GetItemString(dict, fn))) /* borrowed */
        return PyErr_Occurred() ? -1 : 0;
    Py_INCREF(f);
    res = PyObject_CallOneArg(f, env);
    Py_DECREF(f);
    if (!res)
        return -1;
    if (res == Py_None)
        rc = 0;
    else if (PyUnicode_Check(res)
             && (b = PyUnicode_AsEncodedString(res, "latin-1", "strict"))) {
        *out = apr_pstrdup(r->pool, PyBytes_AS_STRING(b));
        rc = 1;
    }
    else if (PyBytes_Check(res)) {
        *out = apr_pstrdup(r->pool, PyBytes_AS_STRING(res));
        rc = 1;
    }
    else {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_TypeError,
                         "%s() must return a str, bytes or None, not %.100s",
                         fn, Py_TYPE(res)->tp_name);
        rc = -1;
    }
    Py_XDECREF(b);
    Py_DECREF(res);
    return rc;
}

int pyh_dispatch_run(pyh_request *req, const char **process_group,
                     const char **application_group, const char **callable)
{
    request_rec *r = req->r;
    const pyh_auth_script *a = req->conf.dispatch_script;
    const char *group = !strcmp(a->application_group, "%{GLOBAL}")
                            ? "" : a->application_group;
    PyObject *module, *env = NULL;
    pyh_interp *in;
    int status = HTTP_INTERNAL_SERVER_ERROR;

    /* mod_wsgi runs the dispatch script in Apache's child, before the
     * request goes to a daemon. */
    if (!pyh_python_ready()) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PYH0128: WSGIDispatchScript '%s': Python did not start "
                      "in this process (dispatch scripts run in Apache's "
                      "children, as in mod_wsgi; WSGIRestrictEmbedded On "
                      "forbids that)",
                      a->path);
        return status;
    }
    if (!(in = pyh_interp_acquire(group, r->server)))
        return status;
    if (!(module = pyh_script_module(in, r, a->path, 1))) {
        pyh_interp_release(in);
        return status;
    }
    if ((env = dispatch_environ(req, group))
        && dispatch_call(r, PyModule_GetDict(module), "process_group", env,
                         process_group) >= 0
        && dispatch_call(r, PyModule_GetDict(module), "application_group",
                         env, application_group) >= 0
        && dispatch_call(r, PyModule_GetDict(module), "callable_object", env,
                         callable) >= 0)
        status = OK;
    else
        pyh_log_exception(in, r, r->server,
                          apr_psprintf(r->pool,
                                       "PYH0128: exception in WSGI dispatch "
                                       "script '%s'",
                                       a->path));
    Py_XDECREF(env);
    Py_DECREF(module);
    pyh_interp_release(in);
    return status;
}
