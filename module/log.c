/* log.c - Python output into Apache's error log: wsgi.errors (tagged with
 * its request), sys.stdout and sys.stderr (tagged with the request the
 * thread is serving, if any), and tracebacks, one log line per traceback
 * line, grouped by the request's log id. */
#include "pyhost.h"

#include "http_main.h"
#include "apr_strings.h"
#include "apr_atomic.h"

PYH_THREAD_LOCAL pyh_request *pyh_current_request;

/* A bound on one traceback's log volume: longer ones keep their head and
 * their tail (the exception and the innermost frames). */
#define LOG_ENTRY_MAX 7000
#define LOG_HEAD_KEEP 1200
#define LOG_LINE_MAX 8000

typedef struct {
    PyObject_HEAD
    pyh_request *req;   /* wsgi.errors: its request; NULL: process stdio */
    int detached;       /* the request has ended */
    int level;
    char *buf;
    apr_size_t len, cap;
} log_object;

static void log_emit(log_object *lo, const char *text, apr_size_t len)
{
    request_rec *r = NULL;
    if (lo->req)
        r = lo->req->r;
    else if (pyh_current_request)
        r = pyh_current_request->r;
    if (r)
        ap_log_rerror(APLOG_MARK, lo->level, 0, r, "%.*s", (int)len, text);
    else
        ap_log_error(APLOG_MARK, lo->level, 0, ap_server_conf, "%.*s",
                     (int)len, text);
}

static void log_flush_buffer(log_object *lo)
{
    if (lo->len)
        log_emit(lo, lo->buf, lo->len);
    lo->len = 0;
}

static int log_closed(log_object *lo)
{
    if (lo->detached) {
        PyErr_SetString(PyExc_ValueError,
                        "wsgi.errors used after its request ended");
        return 1;
    }
    return 0;
}

/* Emits every complete line of data; keeps the rest for later. */
static int log_append(log_object *lo, const char *data, apr_size_t n)
{
    while (n) {
        const char *nl = memchr(data, '\n', n);
        apr_size_t take = nl ? (apr_size_t)(nl - data) : n;
        if (!lo->len && nl) {
            log_emit(lo, data, take);
        }
        else {
            if (lo->len + take > lo->cap) {
                apr_size_t cap = lo->len + take + 256;
                char *grown = PyMem_Realloc(lo->buf, cap);
                if (!grown) {
                    PyErr_NoMemory();
                    return -1;
                }
                lo->buf = grown;
                lo->cap = cap;
            }
            memcpy(lo->buf + lo->len, data, take);
            lo->len += take;
            if (nl || lo->len >= LOG_LINE_MAX)
                log_flush_buffer(lo);
        }
        data += take + (nl ? 1 : 0);
        n -= take + (nl ? 1 : 0);
    }
    return 0;
}

static PyObject *log_write(PyObject *self, PyObject *arg)
{
    log_object *lo = (log_object *)self;
    const char *data;
    Py_ssize_t n;
    if (log_closed(lo))
        return NULL;
    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "write() argument must be str, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    int rc;
    if (!(data = PyUnicode_AsUTF8AndSize(arg, &n)))
        return NULL;
    /* sys.stdout is one object for every thread of the interpreter */
    PYH_BEGIN_CRITICAL_SECTION(self);
    rc = log_append(lo, data, n);
    PYH_END_CRITICAL_SECTION();
    if (rc < 0)
        return NULL;
    return PyLong_FromSsize_t(PyUnicode_GetLength(arg));
}

static PyObject *log_writelines(PyObject *self, PyObject *lines)
{
    PyObject *it = PyObject_GetIter(lines), *line;
    if (!it)
        return NULL;
    while ((line = PyIter_Next(it))) {
        PyObject *res = log_write(self, line);
        Py_DECREF(line);
        if (!res) {
            Py_DECREF(it);
            return NULL;
        }
        Py_DECREF(res);
    }
    Py_DECREF(it);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *log_flush(PyObject *self, PyObject *unused)
{
    log_object *lo = (log_object *)self;
    (void)unused;
    if (log_closed(lo))
        return NULL;
    PYH_BEGIN_CRITICAL_SECTION(self);
    log_flush_buffer(lo);
    PYH_END_CRITICAL_SECTION();
    Py_RETURN_NONE;
}

static PyObject *log_false(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    Py_RETURN_FALSE;
}

static PyObject *log_true(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    Py_RETURN_TRUE;
}

static PyObject *log_fileno(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    PyErr_SetString(PyExc_OSError,
                    "the Apache error log stream has no file descriptor");
    return NULL;
}

static PyObject *log_get_closed(PyObject *self, void *c)
{
    (void)c;
    return PyBool_FromLong(((log_object *)self)->detached);
}

static PyObject *log_get_encoding(PyObject *self, void *c)
{
    (void)self;
    (void)c;
    return PyUnicode_FromString("utf-8");
}

static void log_dealloc(PyObject *self)
{
    log_object *lo = (log_object *)self;
    PyTypeObject *tp = Py_TYPE(self);
    if (!lo->detached && lo->len)
        log_flush_buffer(lo);
    PyMem_Free(lo->buf);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef log_methods[] = {
    {"write", log_write, METH_O, "write(str): log complete lines"},
    {"writelines", log_writelines, METH_O, "write each string"},
    {"flush", log_flush, METH_NOARGS, "log a pending partial line"},
    {"close", log_flush, METH_NOARGS, "same as flush; the log stays open"},
    {"isatty", log_false, METH_NOARGS, NULL},
    {"readable", log_false, METH_NOARGS, NULL},
    {"seekable", log_false, METH_NOARGS, NULL},
    {"writable", log_true, METH_NOARGS, NULL},
    {"fileno", log_fileno, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL}
};

static PyGetSetDef log_getset[] = {
    {"closed", log_get_closed, NULL, NULL, NULL},
    {"encoding", log_get_encoding, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL}
};

static PyType_Slot log_slots[] = {
    {Py_tp_dealloc, log_dealloc},
    {Py_tp_methods, log_methods},
    {Py_tp_getset, log_getset},
    {Py_tp_doc, "A text stream whose lines go to Apache's error log."},
    {0, NULL}
};

static PyType_Spec log_spec = {
    "pyhost.Log", sizeof(log_object), 0, Py_TPFLAGS_DEFAULT, log_slots
};

int pyh_log_init_type(pyh_interp *in)
{
    in->log_type = (PyTypeObject *)PyType_FromSpec(&log_spec);
    return in->log_type ? 0 : -1;
}

PyObject *pyh_log_new(pyh_interp *in, pyh_request *req, int level)
{
    log_object *lo = PyObject_New(log_object, in->log_type);
    if (!lo)
        return NULL;
    lo->req = req;
    lo->detached = 0;
    lo->level = level;
    lo->buf = NULL;
    lo->len = lo->cap = 0;
    return (PyObject *)lo;
}

void pyh_log_attach(PyObject *log, pyh_request *req)
{
    log_object *lo = (log_object *)log;
    lo->req = req;
    lo->detached = 0;
    lo->len = 0;
}

void pyh_log_detach(PyObject *log)
{
    log_object *lo = (log_object *)log;
    log_flush_buffer(lo);
    lo->detached = 1;
    lo->req = NULL;
}

int pyh_log_redirect_stdio(pyh_interp *in)
{
    PyObject *out = pyh_log_new(in, NULL, APLOG_ERR);
    PyObject *err = pyh_log_new(in, NULL, APLOG_ERR);
    int rc = -1;
    if (out && err && PySys_SetObject("stdout", out) == 0
        && PySys_SetObject("stderr", err) == 0)
        rc = pyh_compat_interp_setup(in); /* mod_wsgi module, WSGIRestrict* */
    Py_XDECREF(out);
    Py_XDECREF(err);
    return rc;
}

/* Formats the pending exception with traceback.format_exception. */
static PyObject *log_format_exception(pyh_interp *in, PyObject *type,
                                      PyObject *value, PyObject *tb)
{
    PyObject *lines, *empty, *text;
    lines = PyObject_CallFunctionObjArgs(in->format_exception, type,
                                         value ? value : Py_None,
                                         tb ? tb : Py_None, NULL);
    if (!lines)
        return NULL;
    empty = PyUnicode_FromString("");
    text = empty ? PyUnicode_Join(empty, lines) : NULL;
    Py_XDECREF(empty);
    Py_DECREF(lines);
    return text;
}

/* What ties the lines of one traceback together in a log that other
 * threads write to as well: the request's log id (Apache's own, the %L of
 * ErrorLogFormat, made now if nothing asked for it yet), or a process-wide
 * counter for failures outside a request. */
static const char *log_group_id(request_rec *r, apr_pool_t *p)
{
    static apr_uint32_t serial;
    if (r && !r->log_id && r->connection)
        ap_run_generate_log_id(r->connection, r, &r->log_id);
    if (r && r->log_id)
        return r->log_id;
    return apr_psprintf(p, "%" APR_PID_T_FMT ".%u", getpid(),
                        apr_atomic_inc32(&serial) + 1);
}

#define LOG_LINE(r, s, ...)                                               \
    do {                                                                  \
        if (r)                                                            \
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, __VA_ARGS__);      \
        else                                                              \
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, __VA_ARGS__);       \
    } while (0)

/* One failure as one log line per traceback line, as mod_wsgi writes it
 * (Apache escapes a newline inside an entry to a literal \n). The first
 * line carries the PYHnnnn id, what failed and the traceback's first line;
 * the rest carry only the group id, so that one failure is one entry. */
static void log_traceback(request_rec *r, server_rec *s, apr_pool_t *p,
                          const char *head, const char *msg, apr_size_t len)
{
    const char *id = log_group_id(r, p);
    const char *end = msg + len, *line, *nl;
    nl = memchr(msg, '\n', len);
    if (!nl)
        nl = end;
    LOG_LINE(r, s, "%s [%s]: %.*s", head, id, (int)(nl - msg), msg);
    for (line = nl; line < end; line = nl) {
        line++;
        if (!(nl = memchr(line, '\n', (apr_size_t)(end - line))))
            nl = end;
        LOG_LINE(r, s, "[%s] %.*s", id, (int)(nl - line), line);
    }
}

void pyh_log_text(request_rec *r, server_rec *s, int level, const char *text)
{
    const char *nl = strchr(text, '\n'), *line, *end;
    apr_pool_t *p;
    const char *id;

    if (!nl) { /* one line: as it is */
        if (r)
            ap_log_rerror(APLOG_MARK, level, 0, r, "%s", text);
        else
            ap_log_error(APLOG_MARK, level, 0, s, "%s", text);
        return;
    }
    /* A message with a traceback (the ASGI bridge formats its own): its
     * lines as log_traceback writes them, tied by the group id. */
    p = r ? r->pool : s->process->pool;
    id = log_group_id(r, p);
    end = text + strlen(text);
    while (end > text && end[-1] == '\n')
        end--;
    if (r)
        ap_log_rerror(APLOG_MARK, level, 0, r, "%.*s [%s]", (int)(nl - text), text, id);
    else
        ap_log_error(APLOG_MARK, level, 0, s, "%.*s [%s]", (int)(nl - text), text, id);
    for (line = nl; line < end; line = nl) {
        line++;
        if (!(nl = memchr(line, '\n', (apr_size_t)(end - line))))
            nl = end;
        if (r)
            ap_log_rerror(APLOG_MARK, level, 0, r, "[%s] %.*s", id, (int)(nl - line), line);
        else
            ap_log_error(APLOG_MARK, level, 0, s, "[%s] %.*s", id, (int)(nl - line), line);
    }
}

void pyh_log_exception(pyh_interp *in, request_rec *r, server_rec *s,
                       const char *what)
{
    PyObject *text = NULL;
    pyh_err e;
    const char *msg = NULL;
    Py_ssize_t len = 0;
    apr_pool_t *p = r ? r->pool : s->process->pool;
    const char *where = "";

    pyh_err_take(&e);
    if (e.type) {
        text = in && in->format_exception
                   ? log_format_exception(in, e.type, e.value, e.tb)
                   : NULL;
        if (!text) {
            PyErr_Clear();
            text = PyObject_Str(e.value ? e.value : e.type);
        }
        if (text && !(msg = PyUnicode_AsUTF8AndSize(text, &len)))
            PyErr_Clear();
    }
    if (!msg) {
        msg = "(no Python exception was set)";
        len = (Py_ssize_t)strlen(msg);
    }
    while (len && msg[len - 1] == '\n')
        len--;
    if (r)
        where = apr_psprintf(p, " for %s %s", r->method,
                             ap_escape_logitem(p, r->uri));
    /* The most common sub-interpreter failure deserves its fix inline.
     * CPython says "does not support loading in subinterpreters" or, with
     * a per-interpreter GIL, "... per-interpreter GIL". */
    if (in && in->name && *in->name
        && (strstr(msg, "subinterpreter") || strstr(msg, "per-interpreter GIL"))) {
        msg = apr_psprintf(p, "%.*s\nPYH0017: an extension module refused "
                              "to load in sub-interpreter '%s'%s; run this "
                              "app in the main interpreter with "
                              "WSGIApplicationGroup %%{GLOBAL}%s",
                           (int)len, msg, in->name,
                           in->own_gil ? ", which has its own GIL" : "",
                           in->own_gil ? " or let the groups share one GIL "
                                         "with WSGIPerInterpreterGIL Off"
                                       : "");
        len = (Py_ssize_t)strlen(msg);
    }
    if (len > LOG_ENTRY_MAX) {
        apr_size_t tail = LOG_ENTRY_MAX - LOG_HEAD_KEEP;
        msg = apr_psprintf(p, "%.*s\n  [... %ld bytes of traceback left out "
                              "...]\n%s",
                           LOG_HEAD_KEEP, msg,
                           (long)(len - LOG_HEAD_KEEP - tail),
                           apr_pstrmemdup(p, msg + len - tail, tail));
        len = (Py_ssize_t)strlen(msg);
    }
    log_traceback(r, s, p, apr_pstrcat(p, what, where, NULL), msg,
                  (apr_size_t)len);
    Py_XDECREF(text);
    pyh_err_clear(&e);
}
