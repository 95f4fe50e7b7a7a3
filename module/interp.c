/* interp.c - CPython's lifecycle inside an Apache child: initialization
 * after fork (PEP 587), application groups (the main interpreter and named
 * sub-interpreters), the per-thread thread states that let Apache's worker
 * threads take the GIL cheaply, WSGI script loading and reloading, and
 * finalization when the child exits. */
#include "pyhost.h"
#include "metrics.h"

#include "ap_mpm.h"
#include "http_main.h"
#include "http_request.h"
#include "apr_atomic.h"
#include "apr_strings.h"
#include "apr_file_info.h"

#include <errno.h>

static pyh_interp *interp_main;
static apr_hash_t *interp_by_name;       /* name -> pyh_interp*, not main */
static apr_array_header_t *interp_all;   /* pyh_interp*, index order */
static apr_thread_mutex_t *interp_mutex; /* guards the three above */
static apr_pool_t *interp_pool;
static int interp_multithread, interp_multiprocess;
static int interp_ready;
static pyh_daemon *interp_daemon;        /* NULL in Apache's children */
/* Threads inside an interpreter right now (acquire .. release). */
static volatile apr_uint32_t interp_busy;

/* Each Apache thread keeps one PyThreadState per interpreter it has run,
 * indexed by pyh_interp.index, so a request costs one GIL acquire. */
static PYH_THREAD_LOCAL PyThreadState **interp_tcache;
static PYH_THREAD_LOCAL int interp_tcache_len;

int pyh_python_ready(void)
{
    return interp_ready;
}

static const char *const interp_key_names[PYH_K_COUNT] = {
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING",
    "CONTENT_TYPE", "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT",
    "SERVER_PROTOCOL", "SERVER_SOFTWARE", "SERVER_ADDR", "SERVER_ADMIN",
    "REMOTE_ADDR", "REMOTE_PORT", "REMOTE_USER", "AUTH_TYPE", "REQUEST_URI",
    "REQUEST_SCHEME", "SCRIPT_FILENAME", "DOCUMENT_ROOT", "CONTEXT_PREFIX",
    "CONTEXT_DOCUMENT_ROOT", "GATEWAY_INTERFACE", "wsgi.version",
    "wsgi.url_scheme", "wsgi.input", "wsgi.errors", "wsgi.multithread",
    "wsgi.multiprocess", "wsgi.run_once", "wsgi.file_wrapper",
    "wsgi.input_terminated", "mod_wsgi.process_group",
    "mod_wsgi.application_group", "mod_wsgi.callable_object",
    "mod_wsgi.script_reloading", "pyhost.version",
    "mod_wsgi.request_handler", "mod_wsgi.request_id", "mod_wsgi.version",
};

/* Per-interpreter constants: interned keys and values every request uses. */
static int interp_make_constants(pyh_interp *in)
{
    static const char *const strs[] = {
        [PYH_C_EMPTY] = "", [PYH_C_GATEWAY] = "CGI/1.1",
        [PYH_C_HTTP] = "http", [PYH_C_HTTPS] = "https", [PYH_C_GET] = "GET",
        [PYH_C_HTTP11] = "HTTP/1.1", [PYH_C_HTTP10] = "HTTP/1.0",
        [PYH_C_PYHOST_VERSION] = PYH_VERSION, [PYH_C_CLOSE] = "close",
        [PYH_C_FILENO] = "fileno", [PYH_C_TELL] = "tell",
        [PYH_C_START_RESPONSE] = "start_response", [PYH_C_WRITE] = "write",
    };
    PyObject *traceback;
    int i;

    for (i = 0; i < PYH_K_COUNT; i++)
        if (!(in->keys[i] = PyUnicode_InternFromString(interp_key_names[i])))
            return -1;
    for (i = 0; i < PYH_C_COUNT; i++) {
        if (i == PYH_C_WSGI_VERSION)
            in->consts[i] = Py_BuildValue("(ii)", 1, 0);
        else if (i == PYH_C_MODWSGI_VERSION) /* the interface followed */
            in->consts[i] = Py_BuildValue("(iii)", 6, 0, 0);
        else
            in->consts[i] = PyUnicode_InternFromString(strs[i]);
        if (!in->consts[i])
            return -1;
    }
    in->multithread = Py_NewRef(interp_multithread ? Py_True : Py_False);
    in->multiprocess = Py_NewRef(interp_multiprocess ? Py_True : Py_False);
    if (!(traceback = PyImport_ImportModule("traceback")))
        return -1;
    in->format_exception = PyObject_GetAttrString(traceback, "format_exception");
    Py_DECREF(traceback);
    return in->format_exception ? 0 : -1;
}

/* site.addsitedir for each WSGIPythonPath entry, so .pth files apply. */
static int interp_add_python_path(void)
{
    /* As mod_wsgi: WSGIPythonPath is for embedded mode, a daemon group
     * has its own python-path. */
    apr_array_header_t *path = interp_daemon ? interp_daemon->python_path
                                             : pyh_globals.python_path;
    PyObject *site, *res;
    int i;
    if (!path->nelts)
        return 0;
    if (!(site = PyImport_ImportModule("site")))
        return -1;
    for (i = 0; i < path->nelts; i++) {
        const char *dir = APR_ARRAY_IDX(path, i, const char *);
        res = PyObject_CallMethod(site, "addsitedir", "s", dir);
        if (!res) {
            Py_DECREF(site);
            return -1;
        }
        Py_DECREF(res);
    }
    Py_DECREF(site);
    return 0;
}

/* threading records the thread that first imports it as the main thread
 * and, at finalization, waits for that thread's state to go. Imported here,
 * that is the thread that also finalizes, not an Apache worker whose state
 * lives until the process dies (which hung every child at stop). */
static int interp_import_threading(void)
{
    PyObject *threading = PyImport_ImportModule("threading");
    Py_XDECREF(threading);
    return threading ? 0 : -1;
}

/* ---- protocols ------------------------------------------------------------ */

/* The per-interpreter side of each protocol binding (as NGINX Unit's
 * Python module has): interp.c reaches WSGI and ASGI only through this
 * table, so a new binding is one row, not new calls here. init runs when
 * an interpreter is set up, clear before it ends; both with its GIL. */
typedef struct {
    const char *name;
    int (*interp_init)(pyh_interp *in);
    void (*interp_clear)(pyh_interp *in);
} interp_protocol;

static int interp_wsgi_init(pyh_interp *in)
{
    return pyh_input_init_type(in) < 0 || pyh_wsgi_init_types(in) < 0 ? -1 : 0;
}

static const interp_protocol interp_protocols[] = {
    {"WSGI", interp_wsgi_init, pyh_wsgi_interp_clear},
    {"ASGI", pyh_asgi_interp_init, pyh_asgi_interp_clear},
    /* not a protocol, but the same per-interpreter seam: the interpreter
     * and its GC collections counted for the metrics */
    {"metrics", pyh_metrics_interp_init, pyh_metrics_interp_clear},
};
#define INTERP_PROTOCOLS \
    ((int)(sizeof(interp_protocols) / sizeof(interp_protocols[0])))

static int interp_protocols_init(pyh_interp *in)
{
    int i;
    for (i = 0; i < INTERP_PROTOCOLS; i++)
        if (interp_protocols[i].interp_init(in) < 0)
            return -1;
    return 0;
}

/* In reverse order of init: a later binding may use an earlier one's. */
static void interp_protocols_clear(pyh_interp *in)
{
    int i;
    for (i = INTERP_PROTOCOLS - 1; i >= 0; i--)
        interp_protocols[i].interp_clear(in);
}

/* Everything an interpreter needs before it can serve; the GIL is held
 * with a thread state of `in` current. */
static int interp_setup(pyh_interp *in, server_rec *s)
{
    if (interp_make_constants(in) < 0 || pyh_log_init_type(in) < 0
        || interp_protocols_init(in) < 0
        || pyh_log_redirect_stdio(in) < 0 || interp_import_threading() < 0) {
        pyh_log_exception(in, NULL, s, "PYH0006: setting up interpreter");
        return -1;
    }
    if (interp_add_python_path() < 0)
        pyh_log_exception(in, NULL, s,
                          "PYH0009: adding WSGIPythonPath to sys.path");
    return 0;
}

/* A record for a new interpreter; interp_mutex held (or startup). Its
 * pool has an allocator of its own: interpreters with their own GIL, and
 * the main one while interp_mutex holders allocate from interp_pool, use
 * their pools at the same time, and an apr allocator has no lock. The pool
 * is unmanaged: a subpool of the child's pool would be linked into that
 * pool's list of children, which Apache's listener thread changes (for
 * every connection's pool) with no lock; interp_child_exit destroys it. */
static pyh_interp *interp_new_record(const char *name)
{
    pyh_interp *in = apr_pcalloc(interp_pool, sizeof(*in));
    apr_allocator_t *alloc;
    if (apr_allocator_create(&alloc) != APR_SUCCESS)
        return NULL;
    if (apr_pool_create_unmanaged_ex(&in->pool, NULL, alloc) != APR_SUCCESS) {
        apr_allocator_destroy(alloc);
        return NULL;
    }
    apr_allocator_owner_set(alloc, in->pool);
    in->name = apr_pstrdup(interp_pool, name);
    in->scripts = apr_hash_make(in->pool);
    in->header_keys = apr_hash_make(in->pool);
    /* pushed by any thread entering `in`, under interp_mutex */
    in->tstates = apr_array_make(interp_pool, 8, sizeof(PyThreadState *));
    if (apr_thread_mutex_create(&in->load_mutex, APR_THREAD_MUTEX_DEFAULT,
                                interp_pool) != APR_SUCCESS)
        return NULL;
    in->index = interp_all->nelts;
    *(pyh_interp **)apr_array_push(interp_all) = in;
    return in;
}

/* The slot for `in` in this thread's cache, growing the cache if needed. */
static PyThreadState **interp_tslot(pyh_interp *in)
{
    if (in->index >= interp_tcache_len) {
        int n = in->index + 8;
        PyThreadState **grown = realloc(interp_tcache, n * sizeof(*grown));
        if (!grown)
            return NULL;
        memset(grown + interp_tcache_len, 0,
               (n - interp_tcache_len) * sizeof(*grown));
        interp_tcache = grown;
        interp_tcache_len = n;
    }
    return &interp_tcache[in->index];
}

/* The main interpreter's state for this thread, made through PyGILState so
 * that extensions calling PyGILState_Ensure on this thread find it. The
 * first thread state made on a thread becomes its PyGILState state, so this
 * must come before any sub-interpreter's (else PyGILState_Ensure would hand
 * back a state of that sub-interpreter, and main's requests would run in
 * it); if it still did, a plain state of the main interpreter is used. No
 * GIL held; returns with none held. */
static PyThreadState *interp_main_tstate(void)
{
    PyGILState_STATE g = PyGILState_Ensure(); /* kept: the state is cached */
    PyThreadState *ts = PyThreadState_Get();
    if (PyThreadState_GetInterpreter(ts) != interp_main->istate) {
        PyGILState_Release(g);
        if (!(ts = PyThreadState_New(interp_main->istate)))
            return NULL;
        apr_thread_mutex_lock(interp_mutex);
        *(PyThreadState **)apr_array_push(interp_main->tstates) = ts;
        apr_thread_mutex_unlock(interp_mutex);
        return ts;
    }
    PyEval_SaveThread();
    return ts;
}

/* Takes the GIL in `in` on this thread (its own GIL, or the shared one). */
static int interp_enter(pyh_interp *in)
{
    PyThreadState **slot = interp_tslot(in), **mslot;
    if (!slot)
        return -1;
    if (*slot) {
        PyEval_RestoreThread(*slot);
        return 0;
    }
    if (!(mslot = interp_tslot(interp_main)))
        return -1;
    if (!*mslot && !(*mslot = interp_main_tstate()))
        return -1;
    if (in == interp_main) {
        PyEval_RestoreThread(*mslot);
        return 0;
    }
    slot = interp_tslot(in); /* the cache may have moved */
    if (!(*slot = PyThreadState_New(in->istate)))
        return -1;
    apr_thread_mutex_lock(interp_mutex);
    *(PyThreadState **)apr_array_push(in->tstates) = *slot;
    apr_thread_mutex_unlock(interp_mutex);
    PyEval_RestoreThread(*slot);
    return 0;
}

void pyh_interp_release(pyh_interp *in)
{
    (void)in;
    PyEval_SaveThread();
    apr_atomic_dec32(&interp_busy);
}

void pyh_interp_leave(pyh_interp *in)
{
    (void)in;
    apr_atomic_dec32(&interp_busy);
}

/* Creates the sub-interpreter `name`; interp_mutex is held, the GIL not.
 * shared_gil: never with its own GIL (asked for by an ASGI mount). */
static pyh_interp *interp_create_sub(const char *name, server_rec *s,
                                     int shared_gil)
{
    pyh_interp *in = interp_new_record(name);
    PyThreadState *ts, **slot;
    const char *err;

    if (!in || interp_enter(interp_main) < 0)
        return NULL;
    {
        /* <WSGIInterpreterOptions> may set the group's own GIL; a group
         * created for ASGI shares the GIL whatever is asked. */
        int want_own = pyh_compat_own_gil(name, pyh_globals.per_interpreter_gil);
        in->own_gil = want_own && !shared_gil;
        if (want_own && shared_gil)
            ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                         "PYH0223: application group '%s' shares the GIL although "
                         "WSGIPerInterpreterGIL is On: it serves ASGI, whose "
                         "bridge does not run with a GIL of its own yet",
                         name);
    }
    /* With its own GIL, CPython releases the main GIL here and the new
     * interpreter's is held on return; else the shared one stays held. */
    err = pyh_new_interpreter(&ts, in->own_gil);
    if (err) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "PYH0007: could not create the sub-interpreter for "
                     "application group '%s'%s: %s",
                     name, in->own_gil ? " with its own GIL" : "", err);
        PyEval_SaveThread();
        apr_pool_destroy(in->pool);
        interp_all->nelts--;
        return NULL;
    }
    if (in->own_gil)
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     "PYH0062: application group '%s' created with its own "
                     "GIL (WSGIPerInterpreterGIL On)",
                     name);
    in->istate = PyThreadState_GetInterpreter(ts);
    in->first_tstate = ts;
    in->creator = apr_os_thread_current();
    if (interp_setup(in, s) < 0) {
        /* Keep the record so later requests fail fast instead of
         * re-creating a broken interpreter every time. */
        in->istate = NULL;
    }
    slot = interp_tslot(in);
    if (slot)
        *slot = ts;
    PyEval_SaveThread();
    apr_hash_set(interp_by_name, in->name, APR_HASH_KEY_STRING, in);
    return in->istate ? in : NULL;
}

pyh_interp *pyh_interp_acquire(const char *group, server_rec *s)
{
    return pyh_interp_acquire_for(group, s, 0);
}

pyh_interp *pyh_interp_acquire_for(const char *group, server_rec *s,
                                   int shared_gil)
{
    pyh_interp *in;
    if (!interp_ready)
        return NULL;
    if (!group || !*group) {
        in = interp_main;
    }
    else {
        apr_thread_mutex_lock(interp_mutex);
        in = apr_hash_get(interp_by_name, group, APR_HASH_KEY_STRING);
        if (!in)
            in = interp_create_sub(group, s, shared_gil);
        else if (!in->istate)
            in = NULL;
        apr_thread_mutex_unlock(interp_mutex);
        if (!in)
            return NULL;
    }
    apr_atomic_inc32(&interp_busy);
    if (interp_enter(in) < 0) {
        apr_atomic_dec32(&interp_busy);
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "PYH0008: out of memory making a Python thread state");
        return NULL;
    }
    return in;
}

/* ---- scripts ---------------------------------------------------------- */

struct pyh_script {
    PyObject *module;
    apr_time_t mtime;
    PyObject *callable_name;   /* last name looked up, interned */
};

/* Reads, compiles and runs a script as a fresh module named after its
 * path, registered in sys.modules so that pickle and friends find it. */
static PyObject *interp_exec_script(const char *path)
{
    char modname[40];
    unsigned long long h = 1469598103934665603ULL;
    const unsigned char *c;
    PyObject *bytes = NULL, *code = NULL, *module = NULL, *modules, *res;
    PyObject *dict;
    FILE *f;
    long size;

    for (c = (const unsigned char *)path; *c; c++)
        h = (h ^ *c) * 1099511628211ULL;
    snprintf(modname, sizeof(modname), "_pyhost_%016llx", h);

    f = fopen(path, "rb");
    if (!f) {
        PyErr_SetFromErrnoWithFilename(PyExc_OSError, path);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0
        && fseek(f, 0, SEEK_SET) == 0) {
        bytes = PyBytes_FromStringAndSize(NULL, size);
        if (bytes && fread(PyBytes_AS_STRING(bytes), 1, size, f) != (size_t)size) {
            Py_CLEAR(bytes);
            PyErr_SetFromErrnoWithFilename(PyExc_OSError, path);
        }
    }
    else {
        PyErr_SetFromErrnoWithFilename(PyExc_OSError, path);
    }
    fclose(f);
    if (!bytes)
        return NULL;

    code = Py_CompileStringExFlags(PyBytes_AS_STRING(bytes), path,
                                   Py_file_input, NULL, -1);
    Py_DECREF(bytes);
    if (!code)
        return NULL;
    if (!(module = PyModule_New(modname)))
        goto fail;
    dict = PyModule_GetDict(module);
    if (PyModule_AddStringConstant(module, "__file__", path) < 0
        || PyDict_SetItemString(dict, "__builtins__", PyEval_GetBuiltins()) < 0)
        goto fail;
    if (!(modules = PyImport_GetModuleDict())
        || PyDict_SetItemString(modules, modname, module) < 0)
        goto fail;
    res = PyEval_EvalCode(code, dict, dict);
    if (!res) {
        pyh_err e;
        pyh_err_take(&e);
        if (PyDict_DelItemString(modules, modname) < 0)
            PyErr_Clear();
        pyh_err_put(&e);
        goto fail;
    }
    Py_DECREF(res);
    Py_DECREF(code);
    return module;
fail:
    Py_XDECREF(code);
    Py_XDECREF(module);
    return NULL;
}

static apr_time_t interp_script_mtime(request_rec *r, const char *path)
{
    apr_finfo_t fi;
    if (r && r->finfo.filetype == APR_REG && r->filename
        && !strcmp(r->filename, path))
        return r->finfo.mtime;
    if (apr_stat(&fi, path, APR_FINFO_MTIME, r ? r->pool : interp_pool)
        != APR_SUCCESS)
        return 0;
    return fi.mtime;
}

/* Loads `path` into `in` unless a current copy is loaded; returns the
 * script record or NULL with a Python exception set. GIL held. */
/* The loaded script for path if it is current, else NULL; in->lock held. */
static pyh_script *interp_current(pyh_interp *in, const char *path,
                                  apr_time_t mtime, int reloading,
                                  pyh_script **any)
{
    pyh_script *sc = apr_hash_get(in->scripts, path, APR_HASH_KEY_STRING);
    *any = sc;
    return sc && (!reloading || sc->mtime == mtime) ? sc : NULL;
}

static pyh_script *interp_load(pyh_interp *in, request_rec *r,
                               const char *path, int reloading)
{
    apr_time_t mtime = interp_script_mtime(r, path);
    pyh_script *sc, *cur;
    PyObject *module, *old = NULL;

    PYH_LOCK(&in->lock);
    cur = interp_current(in, path, mtime, reloading, &sc);
    PYH_UNLOCK(&in->lock);
    if (cur)
        return cur;
    Py_BEGIN_ALLOW_THREADS
    apr_thread_mutex_lock(in->load_mutex);
    Py_END_ALLOW_THREADS
    PYH_LOCK(&in->lock);
    cur = interp_current(in, path, mtime, reloading, &sc);
    PYH_UNLOCK(&in->lock);
    if (cur) {
        apr_thread_mutex_unlock(in->load_mutex);
        return cur;
    }
    module = interp_exec_script(path);
    if (module) {
        if (sc && r)
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          "PYH0013: reloaded '%s' (modified)", path);
        PYH_LOCK(&in->lock);
        if (!sc) {
            sc = apr_pcalloc(in->pool, sizeof(*sc));
            apr_hash_set(in->scripts, apr_pstrdup(in->pool, path),
                         APR_HASH_KEY_STRING, sc);
        }
        old = sc->module;
        sc->module = module;
        sc->mtime = mtime;
        PYH_UNLOCK(&in->lock);
        Py_XDECREF(old); /* may run Python code: not under in->lock */
    }
    apr_thread_mutex_unlock(in->load_mutex);
    return module ? sc : NULL;
}

/* An ASGI mount without callable-object=: `application`, as WSGI, else
 * `app`, the name FastAPI and Starlette use. */
static const char *interp_asgi_default(pyh_interp *in, pyh_script *sc)
{
    PyObject *module, *key, *found = NULL;
    int rc = -1;
    PYH_LOCK(&in->lock);
    module = Py_NewRef(sc->module);
    PYH_UNLOCK(&in->lock);
    if ((key = PyUnicode_InternFromString("application"))) {
        rc = pyh_dict_get_ref(PyModule_GetDict(module), key, &found);
        Py_DECREF(key);
    }
    if (rc < 0)
        PyErr_Clear();
    Py_XDECREF(found);
    Py_DECREF(module);
    return rc > 0 ? "application" : "app";
}

/* One error-log entry, for a request or (at startup) for the server. */
static void interp_log_missing(request_rec *r, server_rec *s, const char *msg)
{
    if (r)
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "%s", msg);
    else
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "%s", msg);
}

PyObject *pyh_script_module(pyh_interp *in, request_rec *r,
                            const char *path, int reloading)
{
    pyh_script *sc = interp_load(in, r, path, reloading);
    PyObject *module;
    if (!sc) {
        pyh_log_exception(in, r, r ? r->server : ap_server_conf,
                          apr_psprintf(r ? r->pool : interp_pool,
                                       "PYH0011: loading script '%s'", path));
        return NULL;
    }
    PYH_LOCK(&in->lock);
    module = Py_NewRef(sc->module);
    PYH_UNLOCK(&in->lock);
    return module;
}

PyObject *pyh_script_callable(pyh_interp *in, request_rec *r,
                              const char *path, const char *callable,
                              int reloading, int *http_status)
{
    pyh_script *sc = interp_load(in, r, path, reloading);
    PyObject *app, *module, *name = NULL, *old = NULL;
    int asgi_default = !callable;
    server_rec *s = r ? r->server : ap_server_conf;
    apr_pool_t *p = r ? r->pool : interp_pool;
    const char *kind = asgi_default ? "ASGI" : "WSGI";

    *http_status = HTTP_INTERNAL_SERVER_ERROR;
    if (!sc) {
        pyh_log_exception(in, r, s,
                          apr_psprintf(p, "PYH0011: loading %s script '%s'",
                                       kind, path));
        return NULL;
    }
    if (asgi_default)
        callable = interp_asgi_default(in, sc);
    /* A reload in another thread may replace sc's fields: take references
     * under in->lock (free-threaded builds; the GIL elsewhere). */
    PYH_LOCK(&in->lock);
    module = Py_NewRef(sc->module);
    if (sc->callable_name
        && !strcmp(PyUnicode_AsUTF8(sc->callable_name), callable))
        name = Py_NewRef(sc->callable_name);
    PYH_UNLOCK(&in->lock);
    if (!name) {
        if (!(name = PyUnicode_InternFromString(callable))) {
            Py_DECREF(module);
            pyh_log_exception(in, r, s, "PYH0008: out of memory");
            return NULL;
        }
        PYH_LOCK(&in->lock);
        old = sc->callable_name;
        sc->callable_name = Py_NewRef(name);
        PYH_UNLOCK(&in->lock);
        Py_XDECREF(old);
    }
    if (pyh_dict_get_ref(PyModule_GetDict(module), name, &app) < 0)
        app = NULL;
    Py_DECREF(name);
    Py_DECREF(module);
    if (!app) {
        if (PyErr_Occurred())
            pyh_log_exception(in, r, s, "PYH0012: looking up callable");
        else if (asgi_default)
            interp_log_missing(r, s, apr_psprintf(p,
                "PYH0012: ASGI script '%s' defines neither 'application' "
                "nor 'app'; name the callable with callable-object=",
                path));
        else
            interp_log_missing(r, s, apr_psprintf(p,
                "PYH0012: %s script '%s' defines no '%s'; name the "
                "callable with WSGICallableObject or callable-object=",
                kind, path, callable));
        return NULL;
    }
    if (!PyCallable_Check(app)) {
        interp_log_missing(r, s, apr_psprintf(p,
            "PYH0012: '%s' in %s script '%s' is a %s, not a callable; name "
            "the %s callable with WSGICallableObject or callable-object=",
            callable, kind, path, Py_TYPE(app)->tp_name, kind));
        Py_DECREF(app);
        return NULL;
    }
    return app;
}

/* ---- child start and exit ------------------------------------------------ */

static int interp_status_failed(PyStatus st, PyConfig *cfg, server_rec *s,
                                const char *step)
{
    if (!PyStatus_Exception(st))
        return 0;
    PyConfig_Clear(cfg);
    ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                 "PYH0004: Python failed to initialize (%s): %s%s%s", step,
                 st.func ? st.func : "", st.func ? ": " : "",
                 st.err_msg ? st.err_msg : "exit requested");
    return 1;
}

static int interp_initialize(apr_pool_t *p, server_rec *s)
{
    const char *home = interp_daemon && interp_daemon->python_home
                           ? interp_daemon->python_home
                       : pyh_globals.python_home ? pyh_globals.python_home
                                                 : PYH_PYTHON_HOME;
    char *argv[] = {"mod_pyhost"};
    apr_finfo_t fi;
    PyConfig config;
    PyStatus st;

    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0; /* Apache owns the signals */
    config.parse_argv = 0;
    config.user_site_directory = 0;
    st = PyConfig_SetBytesArgv(&config, 1, argv);
    if (interp_status_failed(st, &config, s, "argv"))
        return -1;
    /* A venv is found through its interpreter's path: getpath reads the
     * pyvenv.cfg next to it and sets sys.prefix to the venv. */
    if (apr_stat(&fi, apr_pstrcat(p, home, "/pyvenv.cfg", NULL),
                 APR_FINFO_TYPE, p) == APR_SUCCESS)
        st = PyConfig_SetBytesString(&config, &config.program_name,
                                     apr_pstrcat(p, home, "/bin/python", NULL));
    else
        st = PyConfig_SetBytesString(&config, &config.home, home);
    if (interp_status_failed(st, &config, s, "home"))
        return -1;
    st = pyh_config_gil(&config,
                        pyh_compat_free_threading(pyh_globals.free_threading));
    if (interp_status_failed(st, &config, s, "gil"))
        return -1;
    st = pyh_compat_pyconfig(&config);
    if (interp_status_failed(st, &config, s, "WSGIPython* settings"))
        return -1;
    if (PyImport_AppendInittab("_pyhost_metrics", pyh_metrics_pyinit) < 0)
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "PYH0302: pyhost.metrics will not be importable here");
    st = Py_InitializeFromConfig(&config);
    if (interp_status_failed(st, &config, s, home))
        return -1;
    PyConfig_Clear(&config);
    return 0;
}

/* WSGIImportScript: loads scripts for this process at start, each into
 * its application group, so the first request does not pay for it. */
static void interp_preload(server_rec *s)
{
    int i;
    for (i = 0; i < pyh_globals.imports->nelts; i++) {
        pyh_import *imp = &APR_ARRAY_IDX(pyh_globals.imports, i, pyh_import);
        const char *group = imp->application_group;
        const char *here = interp_daemon ? interp_daemon->name : "";
        pyh_interp *in;
        if (strcmp(imp->process_group, here)
            && !(!*here && !strcmp(imp->process_group, "%{GLOBAL}")))
            continue;
        if (!strcmp(group, "%{GLOBAL}"))
            group = "";
        else if (group[0] == '%' && group[1] == '{') {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                         "PYH0014: WSGIImportScript '%s': application-group=%s "
                         "depends on a request; name the group instead",
                         imp->script, group);
            continue;
        }
        if (!(in = pyh_interp_acquire(group, s)))
            continue;
        if (!interp_load(in, NULL, imp->script, 1))
            pyh_log_exception(in, NULL, s,
                              apr_psprintf(s->process->pool,
                                           "PYH0011: preloading WSGI script '%s'",
                                           imp->script));
        pyh_interp_release(in);
    }
}

/* Ends a sub-interpreter at child exit, if only our own thread states
 * live in it (Py_EndInterpreter aborts the process otherwise) once its
 * protocols are cleared (they always are: ASGI's lifespan shutdown runs
 * even in an interpreter left unfinalized). The thread
 * that created it is threading's "main thread" there, and threading waits
 * at shutdown until that thread's state is gone: so unless this is that
 * thread, every state we made is deleted first and the end runs on a fresh
 * one. Called and returns with main_ts current; an interpreter with its
 * own GIL is entered by releasing the main GIL and taking its own (a plain
 * PyThreadState_Swap does not switch GILs before 3.13). */
static void interp_end_sub(pyh_interp *in, server_rec *s,
                           PyThreadState *main_ts)
{
    int by_creator = apr_os_thread_equal(in->creator, apr_os_thread_current());
    PyThreadState *t, *last;
    int i, ours;

    last = by_creator ? in->first_tstate : PyThreadState_New(in->istate);
    if (!last)
        return;
    if (in->own_gil) {
        PyEval_SaveThread();
        PyEval_RestoreThread(last);
    }
    else {
        PyThreadState_Swap(last);
    }
    /* First, so that the threads the protocols run in the interpreter
     * (ASGI's event loop, with its lifespan shutdown) are gone before we
     * look for threads that are not ours. */
    interp_protocols_clear(in);
    for (t = PyInterpreterState_ThreadHead(in->istate); t;
         t = PyThreadState_Next(t)) {
        ours = t == in->first_tstate || t == last;
        for (i = 0; !ours && i < in->tstates->nelts; i++)
            ours = t == APR_ARRAY_IDX(in->tstates, i, PyThreadState *);
        if (!ours) {
            ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                         "PYH0015: application group '%s' still has threads "
                         "of its own at exit; not finalizing it",
                         in->name);
            if (in->own_gil) {
                PyEval_SaveThread();
                PyEval_RestoreThread(main_ts);
            }
            else {
                PyThreadState_Swap(main_ts);
            }
            return;
        }
    }
    for (i = 0; i < in->tstates->nelts; i++) {
        t = APR_ARRAY_IDX(in->tstates, i, PyThreadState *);
        PyThreadState_Clear(t);
        PyThreadState_Delete(t);
    }
    if (!by_creator) {
        PyThreadState_Clear(in->first_tstate);
        PyThreadState_Delete(in->first_tstate);
    }
    Py_EndInterpreter(last);
    /* No thread state is current now; the shared GIL is still held, an
     * own GIL is gone with its interpreter. */
    if (in->own_gil)
        PyEval_RestoreThread(main_ts);
    else
        PyThreadState_Swap(main_ts);
}

static apr_status_t interp_child_exit(void *data)
{
    server_rec *s = data;
    PyThreadState *main_ts;
    int i;

    if (!interp_ready)
        return APR_SUCCESS;
    interp_ready = 0;
    /* A request can still be inside Python here: prefork runs the child's
     * cleanups from its SIGTERM handler, on top of whatever the child was
     * doing (event and worker join their worker threads first). Ending
     * an interpreter would free thread states in use (with their own
     * GILs, even while we finalize). The process is exiting: leave Python
     * as it is rather than crash it. */
    if (apr_atomic_read32(&interp_busy)) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     "PYH0016: %u request(s) still inside Python at child "
                     "exit; not finalizing Python",
                     (unsigned)apr_atomic_read32(&interp_busy));
        return APR_SUCCESS;
    }
    if (interp_enter(interp_main) < 0)
        return APR_SUCCESS;
    main_ts = PyThreadState_Get();
    for (i = 1; i < interp_all->nelts; i++) {
        pyh_interp *in = APR_ARRAY_IDX(interp_all, i, pyh_interp *);
        if (in->istate)
            interp_end_sub(in, s, main_ts);
    }
    interp_protocols_clear(interp_main);
    if (Py_FinalizeEx() < 0)
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "PYH0016: errors while finalizing Python at child exit");
    for (i = 0; i < interp_all->nelts; i++)
        apr_pool_destroy(APR_ARRAY_IDX(interp_all, i, pyh_interp *)->pool);
    return APR_SUCCESS;
}

int pyh_interp_child_init(apr_pool_t *pchild, server_rec *s)
{
    if (pyh_globals.restrict_embedded)
        return 0;
    return pyh_interp_process_init(pchild, s, NULL);
}

int pyh_interp_process_init(apr_pool_t *pchild, server_rec *s, pyh_daemon *d)
{
    int threaded = 0, threads = 1, daemons = 1;
    PyThreadState **slot;

    interp_daemon = d;
    interp_pool = pchild;
    if (apr_thread_mutex_create(&interp_mutex, APR_THREAD_MUTEX_DEFAULT,
                                pchild) != APR_SUCCESS)
        return -1;
    interp_by_name = apr_hash_make(pchild);
    interp_all = apr_array_make(pchild, 4, sizeof(pyh_interp *));
    ap_mpm_query(AP_MPMQ_IS_THREADED, &threaded);
    ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads);
    ap_mpm_query(AP_MPMQ_MAX_DAEMONS, &daemons);
    interp_multithread = threaded != AP_MPMQ_NOT_SUPPORTED && threads > 1;
    /* Under prefork, mod_http2 still serves HTTP/2 (h2c with prior
     * knowledge, and h2 where ALPN offers it) on worker threads of its own
     * inside the child, one stream each: two requests of one connection can
     * be in the app at once, so wsgi.multithread must say so (PEP 3333: the
     * app "may be simultaneously invoked by another thread"). */
    if (!interp_multithread && ap_find_linked_module("mod_http2.c"))
        interp_multithread = 1;
    interp_multiprocess = daemons > 1;
    if (d) {
        interp_multithread = d->threads > 1;
        interp_multiprocess = d->processes > 1;
    }

    if (interp_initialize(pchild, s) < 0)
        return -1;
    if (!(interp_main = interp_new_record(""))) {
        Py_FinalizeEx();
        return -1;
    }
    interp_main->istate = PyInterpreterState_Main();
    interp_main->first_tstate = PyThreadState_Get();
    interp_main->creator = apr_os_thread_current();
    if (!(slot = interp_tslot(interp_main))) {
        Py_FinalizeEx();
        return -1;
    }
    *slot = interp_main->first_tstate;
    if (interp_setup(interp_main, s) < 0) {
        Py_FinalizeEx();
        return -1;
    }
    /* Asked for no GIL: say whether that is what Python did. */
    if (pyh_compat_free_threading(pyh_globals.free_threading))
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     "PYH0063: WSGIFreeThreading On: free-threaded Python "
                     PYH_PY_VERSION_STR "t started with the GIL %s",
                     pyh_gil_enabled() ? "on" : "off");
    PyEval_SaveThread();
    interp_ready = 1;
    apr_pool_cleanup_register(pchild, s, interp_child_exit,
                              apr_pool_cleanup_null);
    interp_preload(s);
    return 0;
}
