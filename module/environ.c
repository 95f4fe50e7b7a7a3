/* environ.c - the WSGI environ (PEP 3333, plus the CGI variables and
 * mod_wsgi's keys): pyh_env_collect takes the string values from the
 * request_rec (embedded mode; a daemon gets them in the relay frame), and
 * pyh_environ builds the dict from them, from a per-location template
 * when it can. */
#include "pyhost.h"

#include "http_core.h"
#include "http_protocol.h"
#include "apr_strings.h"

/* Request header names whose environ keys an interpreter remembers. */
#define ENV_HEADER_KEYS_MAX 256

/* ---- environ ------------------------------------------------------------ */

static int env_set_obj(PyObject *env, PyObject *key, PyObject *value)
{
    int rc;
    if (!value)
        return -1;
    rc = PyDict_SetItem(env, key, value);
    Py_DECREF(value);
    return rc;
}

static int env_set(PyObject *env, PyObject *key, const char *value)
{
    return env_set_obj(env, key,
                       PyUnicode_DecodeLatin1(value, strlen(value), NULL));
}

/* A request header name's environ key, cached per interpreter (in
 * in->header_keys, never removed), with the latest value seen for it:
 * clients repeat most header values request after request (Host,
 * User-Agent, Accept...), so a value equal to the last one shares its str
 * instead of decoding a new one. Both fields are read and written under
 * in->lock (a no-op with a GIL). */
typedef struct {
    PyObject *key;
    PyObject *last;   /* NULL, or a str of at most ENV_HEADER_LAST_MAX */
    int secret;       /* Cookie: its value is not kept */
} env_header;

#define ENV_HEADER_LAST_MAX 128

/* HTTP_ key for a request header name in *key (a new reference) and its
 * cache entry in *cached (NULL when not cached); *key NULL (no error) for
 * headers that must not reach environ. */
static int env_header_key(pyh_interp *in, const char *name, int pass_auth,
                          PyObject **key, env_header **cached)
{
    apr_size_t n, i;
    env_header *h;
    char buf[256];

    PYH_LOCK(&in->lock); /* free-threaded builds; the GIL elsewhere */
    h = apr_hash_get(in->header_keys, name, APR_HASH_KEY_STRING);
    if (h)
        Py_INCREF(h->key);
    PYH_UNLOCK(&in->lock);
    *cached = h;
    if (h) {
        *key = h->key;
        return 0;
    }
    *key = NULL;
    if (!strcasecmp(name, "Content-Type") || !strcasecmp(name, "Content-Length")
        || !strcasecmp(name, "Proxy") /* httpoxy */
        || !strcasecmp(name, "Proxy-Authorization")
        || (!pass_auth && !strcasecmp(name, "Authorization")))
        return 0;
    n = strlen(name);
    if (n + 6 > sizeof(buf))
        return 0;
    memcpy(buf, "HTTP_", 5);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        /* Only letters, digits and '-': an underscore would let a client
         * forge a header that a proxy in front set (X-Real_IP vs X-Real-IP). */
        if (c == '-')
            buf[5 + i] = '_';
        else if (apr_isalnum(c))
            buf[5 + i] = (char)apr_toupper(c);
        else
            return 0;
    }
    buf[5 + n] = '\0';
    if (!(*key = PyUnicode_InternFromString(buf)))
        return -1;
    /* Authorization's key depends on a per-directory flag, and its value
     * is a secret: neither is kept. */
    if (strcasecmp(name, "Authorization")) {
        PYH_LOCK(&in->lock);
        h = apr_hash_get(in->header_keys, name, APR_HASH_KEY_STRING);
        if (!h && apr_hash_count(in->header_keys) < ENV_HEADER_KEYS_MAX) {
            h = apr_pcalloc(in->pool, sizeof(*h));
            h->key = Py_NewRef(*key);
            h->secret = !strcasecmp(name, "Cookie");
            apr_hash_set(in->header_keys, apr_pstrdup(in->pool, name),
                         APR_HASH_KEY_STRING, h);
        }
        *cached = h;
        PYH_UNLOCK(&in->lock);
    }
    return 0;
}

/* The str for a header's value: the cached one when the bytes are equal,
 * else a new one, which the cache then remembers. NULL with an exception
 * set on failure. */
static PyObject *env_header_value(pyh_interp *in, env_header *h,
                                  const char *v)
{
    size_t n = strlen(v);
    PyObject *last = NULL, *o;

    if (!h || h->secret || n > ENV_HEADER_LAST_MAX)
        return PyUnicode_DecodeLatin1(v, (Py_ssize_t)n, NULL);
    PYH_LOCK(&in->lock);
    last = h->last;
    Py_XINCREF(last);
    PYH_UNLOCK(&in->lock);
    if (last && (size_t)PyUnicode_GET_LENGTH(last) == n
        && PyUnicode_KIND(last) == PyUnicode_1BYTE_KIND
        && !memcmp(PyUnicode_1BYTE_DATA(last), v, n))
        return last;
    Py_XDECREF(last);
    if (!(o = PyUnicode_DecodeLatin1(v, (Py_ssize_t)n, NULL)))
        return NULL;
    PYH_LOCK(&in->lock);
    last = h->last;
    h->last = Py_NewRef(o);
    PYH_UNLOCK(&in->lock);
    Py_XDECREF(last);
    return o;
}

static int env_add_table(PyObject *env, const apr_table_t *t)
{
    const apr_array_header_t *arr = apr_table_elts(t);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    int i;
    for (i = 0; i < arr->nelts; i++) {
        PyObject *key;
        if (!e[i].key || !e[i].val)
            continue;
        key = PyUnicode_DecodeLatin1(e[i].key, strlen(e[i].key), NULL);
        if (!key || env_set_obj(env, key, PyUnicode_DecodeLatin1(
                                              e[i].val, strlen(e[i].val),
                                              NULL)) < 0) {
            Py_XDECREF(key);
            return -1;
        }
        Py_DECREF(key);
    }
    return 0;
}

static int env_add_headers(pyh_interp *in, pyh_request *req, PyObject *env)
{
    const apr_array_header_t *arr = apr_table_elts(req->r->headers_in);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    int i;
    for (i = 0; i < arr->nelts; i++) {
        PyObject *key;
        env_header *h;
        int rc;
        if (!e[i].key || !e[i].val)
            continue;
        if (env_header_key(in, e[i].key, req->conf.pass_authorization, &key,
                           &h) < 0)
            return -1;
        if (!key)
            continue;
        rc = env_set_obj(env, key, env_header_value(in, h, e[i].val));
        Py_DECREF(key);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* Whether a HEAD request should run as GET (WSGIMapHEADToGET). */
static int env_map_head(pyh_request *req)
{
    ap_filter_t *f;
    if (!req->r->header_only || req->conf.map_head_to_get == PYH_HEAD_OFF)
        return 0;
    if (req->conf.map_head_to_get == PYH_HEAD_ON)
        return 1;
    /* Auto: a content filter may need the body to produce the headers. */
    for (f = req->r->output_filters; f; f = f->next)
        if (f->frec->ftype < AP_FTYPE_PROTOCOL)
            return 1;
    return 0;
}

/* wsgi.url_scheme (and REQUEST_SCHEME): as mod_wsgi, an HTTPS variable
 * of on/1/yes makes it https, which is how a TLS-terminating proxy in front
 * is declared (SetEnvIf X-Forwarded-Proto ^https$ HTTPS=on). */
static const char *env_scheme(request_rec *r)
{
    const char *https = apr_table_get(r->subprocess_env, "HTTPS");
    if (https && (!strcasecmp(https, "on") || !strcmp(https, "1")
                  || !strcasecmp(https, "yes")))
        return "https";
    return ap_http_scheme(r);
}

/* WSGITrustedProxyHeaders onto the CGI variables (HTTP_HOST is the
 * Host header, which pyh_compat_proxy_view already replaced). */
static void env_proxy_view(pyh_request *req)
{
    pyh_proxy_view pv;
    const char **v = req->vars;
    if (!pyh_compat_proxy_view(req->r, &req->conf, &pv))
        return;
    if (pv.client)
        v[PYH_K_REMOTE_ADDR] = pv.client;
    if (pv.server)
        v[PYH_K_SERVER_NAME] = pv.server;
    if (pv.scheme)
        v[PYH_K_REQUEST_SCHEME] = pv.scheme;
    if (!req->asgi) {
        if (pv.port)
            v[PYH_K_SERVER_PORT] = pv.port; /* as mod_wsgi: unchecked */
        return;
    }
    /* An ASGI request relayed to a daemon: its scope's "server" is made
     * from these there (relay.c), as asgi.c makes it in the child. */
    if (pv.server_host)
        v[PYH_K_SERVER_ADDR] = pv.server_host;
    if (pv.server_port)
        v[PYH_K_SERVER_PORT] = apr_itoa(req->r->pool, pv.server_port);
}

void pyh_env_collect(pyh_request *req)
{
    request_rec *r = req->r;
    conn_rec *c = r->connection;
    const char **v = req->vars;
    const char *pg = req->conf.process_group;

    v[PYH_K_REQUEST_METHOD] = env_map_head(req) ? "GET" : r->method;
    v[PYH_K_SCRIPT_NAME] = req->script_name;
    v[PYH_K_PATH_INFO] = req->path_info;
    v[PYH_K_QUERY_STRING] = r->args ? r->args : "";
    v[PYH_K_CONTENT_TYPE] = apr_table_get(r->headers_in, "Content-Type");
    v[PYH_K_CONTENT_LENGTH] = apr_table_get(r->headers_in, "Content-Length");
    v[PYH_K_SERVER_NAME] = ap_get_server_name(r);
    v[PYH_K_SERVER_PORT] = apr_itoa(r->pool, (int)ap_get_server_port(r));
    v[PYH_K_SERVER_PROTOCOL] = r->protocol;
    v[PYH_K_SERVER_SOFTWARE] = ap_get_server_banner();
    v[PYH_K_SERVER_ADDR] = c->local_ip;
    v[PYH_K_SERVER_ADMIN] = r->server->server_admin;
    v[PYH_K_REMOTE_ADDR] = r->useragent_ip;
    v[PYH_K_REMOTE_PORT] =
        apr_itoa(r->pool, c->client_addr ? (int)c->client_addr->port : 0);
    v[PYH_K_REMOTE_USER] = r->user;
    v[PYH_K_AUTH_TYPE] = r->ap_auth_type;
    v[PYH_K_REQUEST_URI] = r->unparsed_uri;
    v[PYH_K_REQUEST_SCHEME] = env_scheme(r);
    v[PYH_K_SCRIPT_FILENAME] = r->filename;
    v[PYH_K_DOCUMENT_ROOT] = ap_document_root(r);
    v[PYH_K_CONTEXT_PREFIX] = ap_context_prefix(r);
    v[PYH_K_CONTEXT_DOCUMENT_ROOT] = ap_context_document_root(r);
    v[PYH_K_MODWSGI_PROCESS_GROUP] =
        (!pg || !strcmp(pg, "%{GLOBAL}")) ? "" : pg;
    v[PYH_K_MODWSGI_APPLICATION_GROUP] = req->app_group;
    v[PYH_K_MODWSGI_CALLABLE_OBJECT] = req->conf.callable_object;
    v[PYH_K_MODWSGI_SCRIPT_RELOADING] = req->conf.script_reloading ? "1" : "0";
    v[PYH_K_MODWSGI_REQUEST_HANDLER] = r->handler;
    /* Apache's request log id (%L), which the lines of a traceback carry
     * too (log.c): an app can log it to match the two. */
    if (!r->log_id && c)
        ap_run_generate_log_id(c, r, &r->log_id);
    v[PYH_K_MODWSGI_REQUEST_ID] = r->log_id;
    env_proxy_view(req); /* WSGITrustedProxyHeaders */
}

/* A CGI variable from req->vars, when present; `common` is a constant for
 * its most frequent value (or -1), shared instead of decoded anew. */
static int env_set_var(PyObject *env, pyh_interp *in, pyh_request *req,
                       enum pyh_key key, int common)
{
    const char *v = req->vars[key];
    if (!v)
        return 0;
    if (common >= 0) {
        PyObject *c = in->consts[common];
        if (PyUnicode_GET_LENGTH(c) == (Py_ssize_t)strlen(v)
            && !memcmp(PyUnicode_1BYTE_DATA(c), v, PyUnicode_GET_LENGTH(c)))
            return PyDict_SetItem(env, in->keys[key], c);
    }
    return env_set(env, in->keys[key], v);
}

/* The string-valued keys env_set_var sets, with their common values. */
static const struct {
    enum pyh_key key;
    int common;
} env_vars[] = {
    {PYH_K_REQUEST_METHOD, PYH_C_GET},
    {PYH_K_SCRIPT_NAME, PYH_C_EMPTY},
    {PYH_K_PATH_INFO, PYH_C_EMPTY},
    {PYH_K_QUERY_STRING, PYH_C_EMPTY},
    {PYH_K_CONTENT_TYPE, -1},
    {PYH_K_CONTENT_LENGTH, -1},
    {PYH_K_SERVER_NAME, -1},
    {PYH_K_SERVER_PORT, -1},
    {PYH_K_SERVER_PROTOCOL, PYH_C_HTTP11},
    {PYH_K_SERVER_SOFTWARE, -1},
    {PYH_K_SERVER_ADDR, -1},
    {PYH_K_REMOTE_ADDR, -1},
    {PYH_K_REMOTE_PORT, -1},
    {PYH_K_REQUEST_URI, -1},
    {PYH_K_SCRIPT_FILENAME, -1},
    {PYH_K_DOCUMENT_ROOT, -1},
    {PYH_K_CONTEXT_PREFIX, PYH_C_EMPTY},
    {PYH_K_CONTEXT_DOCUMENT_ROOT, -1},
    {PYH_K_REQUEST_SCHEME, PYH_C_HTTP},
    {PYH_K_SERVER_ADMIN, -1},
    {PYH_K_REMOTE_USER, -1},
    {PYH_K_AUTH_TYPE, -1},
    {PYH_K_MODWSGI_PROCESS_GROUP, PYH_C_EMPTY},
    {PYH_K_MODWSGI_APPLICATION_GROUP, PYH_C_EMPTY},
    {PYH_K_MODWSGI_CALLABLE_OBJECT, -1},
    {PYH_K_MODWSGI_SCRIPT_RELOADING, -1},
    {PYH_K_MODWSGI_REQUEST_HANDLER, -1},
    {PYH_K_MODWSGI_REQUEST_ID, -1},
};

/* The wsgi.* keys, GATEWAY_INTERFACE and pyhost.version. */
static int env_set_wsgi(pyh_interp *in, PyObject *env, pyh_request *req,
                        PyObject *input, PyObject *errors)
{
    PyObject **k = in->keys, **cst = in->consts;
    const char *scheme = req->vars[PYH_K_REQUEST_SCHEME];
    const struct {
        enum pyh_key key;
        PyObject *value;
    } items[] = {
        {PYH_K_GATEWAY_INTERFACE, cst[PYH_C_GATEWAY]},
        {PYH_K_WSGI_VERSION, cst[PYH_C_WSGI_VERSION]},
        {PYH_K_WSGI_URL_SCHEME,
         cst[scheme && !strcmp(scheme, "https") ? PYH_C_HTTPS : PYH_C_HTTP]},
        {PYH_K_WSGI_INPUT, input},
        {PYH_K_WSGI_ERRORS, errors},
        {PYH_K_WSGI_MULTITHREAD, in->multithread},
        {PYH_K_WSGI_MULTIPROCESS, in->multiprocess},
        {PYH_K_WSGI_RUN_ONCE, Py_False},
        {PYH_K_WSGI_FILE_WRAPPER, (PyObject *)in->file_wrapper_type},
        {PYH_K_WSGI_INPUT_TERMINATED, Py_True},
        {PYH_K_PYHOST_VERSION, cst[PYH_C_PYHOST_VERSION]},
        {PYH_K_MODWSGI_VERSION, cst[PYH_C_MODWSGI_VERSION]},
    };
    size_t i;
    for (i = 0; i < sizeof(items) / sizeof(items[0]); i++)
        if (PyDict_SetItem(env, k[items[i].key], items[i].value) < 0)
            return -1;
    return 0;
}

/* ---- environ templates ----------------------------------------------------
 * Most of environ is the same for every request of one script at one
 * location: the server's name, port, address and software, the script's
 * file and mount point, the document root, the mod_wsgi.* and constant
 * wsgi.* keys. Each interpreter keeps a few template dicts holding those
 * (and None in the slots of the per-request keys every request has), each
 * with the C strings it was built from; a request whose strings compare
 * equal starts from PyDict_Copy of the template (one memcpy of the key
 * table, no hashing, no decoding, no resizing) and sets only its own keys.
 * Built from req->vars alone, so a daemon's relayed requests use it too. */

#define ENV_TEMPLATES_MAX 16

/* String keys whose values are fixed per template (compared per request),
 * the ones most likely to differ first. */
static const enum pyh_key env_fixed[] = {
    PYH_K_SCRIPT_FILENAME, PYH_K_SCRIPT_NAME, PYH_K_SERVER_NAME,
    PYH_K_SERVER_PORT, PYH_K_SERVER_ADDR, PYH_K_MODWSGI_APPLICATION_GROUP,
    PYH_K_MODWSGI_CALLABLE_OBJECT, PYH_K_MODWSGI_SCRIPT_RELOADING,
    PYH_K_MODWSGI_PROCESS_GROUP, PYH_K_REQUEST_SCHEME, PYH_K_DOCUMENT_ROOT,
    PYH_K_CONTEXT_PREFIX, PYH_K_CONTEXT_DOCUMENT_ROOT, PYH_K_SERVER_ADMIN,
    PYH_K_SERVER_SOFTWARE, PYH_K_MODWSGI_REQUEST_HANDLER,
};
#define ENV_FIXED_N (sizeof(env_fixed) / sizeof(env_fixed[0]))

/* Keys every request sets itself, over the template's None. */
static const struct {
    enum pyh_key key;
    int common;
} env_own[] = {
    {PYH_K_REQUEST_METHOD, PYH_C_GET},
    {PYH_K_PATH_INFO, PYH_C_EMPTY},
    {PYH_K_QUERY_STRING, PYH_C_EMPTY},
    {PYH_K_SERVER_PROTOCOL, PYH_C_HTTP11},
    {PYH_K_REMOTE_ADDR, -1},
    {PYH_K_REMOTE_PORT, -1},
    {PYH_K_REQUEST_URI, -1},
};
#define ENV_OWN_N (sizeof(env_own) / sizeof(env_own[0]))

/* Keys a request may or may not have: never in a template. */
static const enum pyh_key env_optional[] = {
    PYH_K_CONTENT_TYPE, PYH_K_CONTENT_LENGTH, PYH_K_REMOTE_USER,
    PYH_K_AUTH_TYPE, PYH_K_MODWSGI_REQUEST_ID,
};

typedef struct pyh_env_template {
    struct pyh_env_template *next;
    PyObject *dict;
    PyObject *last[ENV_OWN_N];      /* each own key's latest value */
    const char *fixed[ENV_FIXED_N]; /* copies in this block; NULL: absent */
} pyh_env_template;

static int env_template_matches(const pyh_env_template *t,
                                const char *const *vars)
{
    size_t i;
    for (i = 0; i < ENV_FIXED_N; i++) {
        const char *a = t->fixed[i], *b = vars[env_fixed[i]];
        if (a != b && (!a || !b || strcmp(a, b)))
            return 0;
    }
    return 1;
}

static void env_template_free(pyh_env_template *t)
{
    size_t i;
    for (i = 0; i < ENV_OWN_N; i++)
        Py_XDECREF(t->last[i]);
    Py_XDECREF(t->dict);
    free(t);
}

/* A new template for these vars, or NULL with an exception set. */
static pyh_env_template *env_template_new(pyh_interp *in, pyh_request *req)
{
    PyObject *env, **k = in->keys;
    size_t i, size = sizeof(pyh_env_template);
    pyh_env_template *t;
    char *p;

    for (i = 0; i < ENV_FIXED_N; i++)
        if (req->vars[env_fixed[i]])
            size += strlen(req->vars[env_fixed[i]]) + 1;
    if (!(t = calloc(1, size))) {
        PyErr_NoMemory();
        return NULL;
    }
    p = (char *)(t + 1);
    for (i = 0; i < ENV_FIXED_N; i++) {
        const char *v = req->vars[env_fixed[i]];
        if (v) {
            size_t n = strlen(v) + 1;
            memcpy(p, v, n);
            t->fixed[i] = p;
            p += n;
        }
    }
    if (!(env = t->dict = PyDict_New()))
        goto fail;
    for (i = 0; i < ENV_FIXED_N; i++)
        if (t->fixed[i] && env_set(env, k[env_fixed[i]], t->fixed[i]) < 0)
            goto fail;
    for (i = 0; i < ENV_OWN_N; i++)
        if (PyDict_SetItem(env, k[env_own[i].key], Py_None) < 0)
            goto fail;
    /* wsgi.input and wsgi.errors: each request sets its own */
    if (env_set_wsgi(in, env, req, Py_None, Py_None) < 0)
        goto fail;
    return t;
fail:
    env_template_free(t);
    return NULL;
}

/* What a request takes from a template, with its own references: the
 * template's list and fields are shared by the interpreter's threads (the
 * GIL guards them, or in->lock on a free-threaded build), so nothing of it
 * is read outside that lock but this. `t` is only compared, never
 * dereferenced, once the lock is released. */
typedef struct {
    pyh_env_template *t;
    PyObject *dict;
    PyObject *last[ENV_OWN_N];
} env_snapshot;

/* Under in->lock: t goes to the front and snap gets references. */
static void env_template_take(pyh_interp *in, pyh_env_template **pp,
                              pyh_env_template *t, env_snapshot *snap)
{
    size_t i;
    if (pp != &in->env_templates) {
        *pp = t->next;
        t->next = in->env_templates;
        in->env_templates = t;
    }
    snap->t = t;
    snap->dict = Py_NewRef(t->dict);
    for (i = 0; i < ENV_OWN_N; i++) {
        snap->last[i] = t->last[i];
        Py_XINCREF(snap->last[i]);
    }
}

/* Under in->lock: the template matching these vars, or NULL. */
static pyh_env_template *env_template_find(pyh_interp *in, const char *const *vars,
                                           pyh_env_template ***where)
{
    pyh_env_template **pp = &in->env_templates, *t;
    for (; (t = *pp); pp = &t->next) {
        if (env_template_matches(t, vars)) {
            *where = pp;
            return t;
        }
    }
    return NULL;
}

/* Fills snap from the template for this request, found or made (most
 * recently used first; the least recently used one goes when there are
 * too many). -1 with an exception set on failure. */
static int env_template_get(pyh_interp *in, pyh_request *req,
                            env_snapshot *snap)
{
    pyh_env_template **pp, *t, *made, *evicted = NULL;

    PYH_LOCK(&in->lock);
    t = env_template_find(in, req->vars, &pp);
    if (t)
        env_template_take(in, pp, t, snap);
    PYH_UNLOCK(&in->lock);
    if (t)
        return 0;
    /* Python code runs here (a str's dealloc at worst): no lock held. */
    if (!(made = env_template_new(in, req)))
        return -1;
    PYH_LOCK(&in->lock);
    if ((t = env_template_find(in, req->vars, &pp))) {
        env_template_take(in, pp, t, snap); /* another thread made it */
        evicted = made;
    }
    else {
        if (in->env_template_count >= ENV_TEMPLATES_MAX) {
            for (pp = &in->env_templates; (*pp)->next; pp = &(*pp)->next)
                ;
            evicted = *pp;
            *pp = NULL;
            in->env_template_count--;
        }
        made->next = in->env_templates;
        in->env_templates = made;
        in->env_template_count++;
        env_template_take(in, &in->env_templates, made, snap);
    }
    PYH_UNLOCK(&in->lock);
    if (evicted)
        env_template_free(evicted);
    return 0;
}

/* A request decoded a new value of own key i: the template remembers it,
 * if it is still listed (if a new template took a freed one's address,
 * the value is still only shared after a byte comparison, so no harm). */
static void env_template_remember(pyh_interp *in, pyh_env_template *t,
                                  size_t i, PyObject *value)
{
    pyh_env_template *u;
    PyObject *old = NULL;
    PYH_LOCK(&in->lock);
    for (u = in->env_templates; u && u != t; u = u->next)
        ;
    if (u) {
        old = u->last[i];
        u->last[i] = Py_NewRef(value);
    }
    PYH_UNLOCK(&in->lock);
    Py_XDECREF(old);
}

static void env_snapshot_release(env_snapshot *snap)
{
    size_t i;
    Py_XDECREF(snap->dict);
    for (i = 0; i < ENV_OWN_N; i++)
        Py_XDECREF(snap->last[i]);
}

/* Apache's variables from a template's point of view: those whose key the
 * template holds are set by pyhost (CGI variables always win). */
static int env_add_table_except(PyObject *env, const apr_table_t *t,
                                PyObject *except)
{
    const apr_array_header_t *arr = apr_table_elts(t);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    int i, rc;
    for (i = 0; i < arr->nelts; i++) {
        PyObject *key;
        if (!e[i].key || !e[i].val)
            continue;
        if (!(key = PyUnicode_DecodeLatin1(e[i].key, strlen(e[i].key), NULL)))
            return -1;
        rc = PyDict_Contains(except, key);
        if (rc == 0)
            rc = env_set_obj(env, key, PyUnicode_DecodeLatin1(
                                           e[i].val, strlen(e[i].val), NULL));
        Py_DECREF(key);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* One of the keys every request sets. Consecutive requests of a location
 * often repeat a value (the client's address over a keep-alive connection,
 * the method, a hot path): the template keeps each key's latest str and
 * shares it while the bytes are equal, instead of decoding a new one. */
static int env_set_own(PyObject *env, pyh_interp *in, pyh_request *req,
                       const env_snapshot *snap, size_t i)
{
    const char *v = req->vars[env_own[i].key];
    size_t n = strlen(v);
    PyObject *last = snap->last[i], *o;

    if (env_own[i].common >= 0) {
        PyObject *c = in->consts[env_own[i].common];
        if ((size_t)PyUnicode_GET_LENGTH(c) == n
            && !memcmp(PyUnicode_1BYTE_DATA(c), v, n))
            return PyDict_SetItem(env, in->keys[env_own[i].key], c);
    }
    if (last && (size_t)PyUnicode_GET_LENGTH(last) == n
        && PyUnicode_KIND(last) == PyUnicode_1BYTE_KIND
        && !memcmp(PyUnicode_1BYTE_DATA(last), v, n))
        return PyDict_SetItem(env, in->keys[env_own[i].key], last);
    if (!(o = PyUnicode_DecodeLatin1(v, (Py_ssize_t)n, NULL)))
        return -1;
    env_template_remember(in, snap->t, i, o);
    return env_set_obj(env, in->keys[env_own[i].key], o);
}

/* environ from a template; NULL with nothing raised when this request
 * cannot use one (a key every request has is missing). */
static PyObject *env_build_fast(pyh_interp *in, pyh_request *req)
{
    PyObject *env = NULL, **k = in->keys;
    env_snapshot snap;
    size_t i;

    for (i = 0; i < ENV_OWN_N; i++)
        if (!req->vars[env_own[i].key])
            return NULL;
    memset(&snap, 0, sizeof(snap));
    if (env_template_get(in, req, &snap) < 0
        || !(env = PyDict_Copy(snap.dict)))
        goto fail;
    if (env_add_table_except(env, req->r->subprocess_env, snap.dict) < 0
        || env_add_headers(in, req, env) < 0)
        goto fail;
    for (i = 0; i < ENV_OWN_N; i++)
        if (env_set_own(env, in, req, &snap, i) < 0)
            goto fail;
    for (i = 0; i < sizeof(env_optional) / sizeof(env_optional[0]); i++)
        if (env_set_var(env, in, req, env_optional[i], -1) < 0)
            goto fail;
    if (PyDict_SetItem(env, k[PYH_K_WSGI_INPUT], req->input_obj) < 0
        || PyDict_SetItem(env, k[PYH_K_WSGI_ERRORS], req->errors_obj) < 0)
        goto fail;
    env_snapshot_release(&snap);
    return env;
fail:
    env_snapshot_release(&snap);
    Py_XDECREF(env);
    return NULL;
}

/* environ key by key (no template): from req->vars, r->headers_in,
 * r->subprocess_env and req->conf only. */
static PyObject *env_build_full(pyh_interp *in, pyh_request *req)
{
    PyObject *env = PyDict_New();
    size_t i;

    if (!env)
        return NULL;
    /* Apache's own variables (SetEnv, mod_rewrite, mod_ssl, ...) first,
     * so that the CGI variables below always win. */
    if (env_add_table(env, req->r->subprocess_env) < 0
        || env_add_headers(in, req, env) < 0)
        goto fail;
    for (i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++)
        if (env_set_var(env, in, req, env_vars[i].key, env_vars[i].common) < 0)
            goto fail;
    if (env_set_wsgi(in, env, req, req->input_obj, req->errors_obj) < 0)
        goto fail;
    return env;
fail:
    Py_DECREF(env);
    return NULL;
}

/* environ from req->vars, r->headers_in, r->subprocess_env and req->conf
 * only: from a template when it can, else built key by key. */
PyObject *pyh_environ(pyh_interp *in, pyh_request *req)
{
    PyObject *env = env_build_fast(in, req), *cap;
    if (!env && !PyErr_Occurred())
        env = env_build_full(in, req);
    /* WSGIPassApacheRequest (mod_wsgi): for C extensions that call
     * Apache's API; a daemon has no request_rec of Apache's to give. */
    if (env && req->conf.pass_apache_request == 1 && !pyh_this_daemon) {
        if (!(cap = PyCapsule_New(req->r, NULL, NULL))
            || PyDict_SetItemString(env, "apache.request_rec", cap) < 0)
            Py_CLEAR(env);
        Py_XDECREF(cap);
    }
    return env;
}

/* Drops what the interpreter keeps for environs (templates, header keys
 * and their last values) before it ends; its GIL is held. */
void pyh_env_interp_clear(pyh_interp *in)
{
    apr_hash_index_t *hi;
    pyh_env_template *t;

    while ((t = in->env_templates)) {
        in->env_templates = t->next;
        env_template_free(t);
    }
    in->env_template_count = 0;
    for (hi = apr_hash_first(NULL, in->header_keys); hi; hi = apr_hash_next(hi)) {
        env_header *h = apr_hash_this_val(hi);
        Py_CLEAR(h->key);
        Py_CLEAR(h->last);
    }
    apr_hash_clear(in->header_keys);
}
