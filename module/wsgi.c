/* wsgi.c - the WSGI adapter (PEP 3333): calls the app with environ
 * (environ.c), implements start_response and write(), validates what the
 * app returns, and sends the response through httpd's output filters,
 * with wsgi.file_wrapper turned into a file bucket. Whatever the app does
 * wrong ends only its own request. */
#include "pyhost.h"

#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"
#include "apr_buckets.h"
#include "apr_strings.h"

#include <fcntl.h>
#include <sys/stat.h>

/* ---- the request object: start_response and write ----------------------
 * One object per request in flight, with start_response and write bound
 * to it and the request's wsgi.input and wsgi.errors. When its request
 * ends and nothing outside holds any of them (the reference counts say
 * so), the set goes to the interpreter's spares and serves a later
 * request as it is: five objects neither made nor freed per request.
 * Anything an app kept stays detached for good and raises when used. */

typedef struct {
    PyObject_HEAD
    pyh_request *req;
    PyObject *start_response, *write;  /* bound to this object */
    PyObject *input, *errors;
} request_object;

static pyh_request *wsgi_live(PyObject *self)
{
    pyh_request *req = ((request_object *)self)->req;
    if (!req)
        PyErr_SetString(PyExc_RuntimeError,
                        "start_response/write used after the request ended");
    return req;
}

/* The latin-1 bytes of a str, or NULL with an exception naming `what`. */
static const char *wsgi_latin1(PyObject *o, Py_ssize_t *len, const char *what)
{
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be str, not %.100s", what,
                     Py_TYPE(o)->tp_name);
        return NULL;
    }
    if (PYH_UNICODE_READY(o) < 0)
        return NULL;
    if (PyUnicode_KIND(o) != PyUnicode_1BYTE_KIND) {
        PyErr_Format(PyExc_ValueError,
                     "%s %R has a character outside latin-1", what, o);
        return NULL;
    }
    *len = PyUnicode_GET_LENGTH(o);
    return (const char *)PyUnicode_1BYTE_DATA(o);
}

static int wsgi_is_tchar(unsigned char c)
{
    return apr_isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Field values may hold visible characters, spaces and tabs; CR, LF, NUL
 * and other controls would let an app split or smuggle a response. */
static int wsgi_is_field_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int wsgi_parse_status(pyh_request *req, PyObject *status)
{
    Py_ssize_t len, i;
    const char *s = wsgi_latin1(status, &len, "status");
    if (!s)
        return -1;
    if (len < 4 || !apr_isdigit(s[0]) || !apr_isdigit(s[1])
        || !apr_isdigit(s[2]) || s[3] != ' ' || s[0] == '0') {
        PyErr_Format(PyExc_ValueError,
                     "status %R is not of the form '200 OK'", status);
        return -1;
    }
    for (i = 4; i < len; i++) {
        if (!wsgi_is_field_char((unsigned char)s[i])) {
            PyErr_Format(PyExc_ValueError,
                         "status %R contains a control character", status);
            return -1;
        }
    }
    req->status = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
    req->status_line = apr_pstrmemdup(req->r->pool, s, len);
    return 0;
}

static int wsgi_parse_headers(pyh_request *req, PyObject *headers)
{
    Py_ssize_t i;
    apr_array_header_t *out;

    if (!PyList_Check(headers)) {
        PyErr_Format(PyExc_TypeError,
                     "response headers must be a list, not %.100s",
                     Py_TYPE(headers)->tp_name);
        return -1;
    }
    out = apr_array_make(req->r->pool, (int)PyList_GET_SIZE(headers) + 1,
                         sizeof(pyh_header));
    req->content_length = -1;
    /* Only an error message can run Python code here (a repr), and we
     * stop right after it, so the list cannot change under the loop. */
    for (i = 0; i < PyList_GET_SIZE(headers); i++) {
        PyObject *item = PyList_GET_ITEM(headers, i);
        const char *name, *value;
        Py_ssize_t nlen, vlen, j;
        pyh_header *h;

        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_Format(PyExc_TypeError,
                         "response header %R is not a (name, value) tuple",
                         item);
            return -1;
        }
        if (!(name = wsgi_latin1(PyTuple_GET_ITEM(item, 0), &nlen,
                                 "header name"))
            || !(value = wsgi_latin1(PyTuple_GET_ITEM(item, 1), &vlen,
                                     "header value")))
            return -1;
        for (j = 0; j < nlen; j++)
            if (!wsgi_is_tchar((unsigned char)name[j]))
                break;
        if (!nlen || j < nlen) {
            PyErr_Format(PyExc_ValueError, "invalid header name %R",
                         PyTuple_GET_ITEM(item, 0));
            return -1;
        }
        for (j = 0; j < vlen; j++)
            if (!wsgi_is_field_char((unsigned char)value[j]))
                break;
        if (j < vlen) {
            PyErr_Format(PyExc_ValueError,
                         "value of header %R contains a control character "
                         "(CR, LF or NUL?)",
                         PyTuple_GET_ITEM(item, 0));
            return -1;
        }
        h = apr_array_push(out);
        h->name = apr_pstrmemdup(req->r->pool, name, nlen);
        h->value = apr_pstrmemdup(req->r->pool, value, vlen);
        if (!strcasecmp(h->name, "Content-Length")) {
            char *end;
            if (apr_strtoff(&req->content_length, h->value, &end, 10)
                    != APR_SUCCESS
                || *end || req->content_length < 0 || end == h->value) {
                PyErr_Format(PyExc_ValueError, "invalid Content-Length %R",
                             PyTuple_GET_ITEM(item, 1));
                return -1;
            }
        }
    }
    req->headers = out;
    return 0;
}

/* start_response's arguments: (status, response_headers, exc_info=None),
 * by position or by name. 0, or -1 with a TypeError. */
static int wsgi_sr_args(PyObject *const *args, Py_ssize_t nargs,
                        PyObject *kwnames, PyObject **out)
{
    static const char *const names[3] = {"status", "response_headers",
                                         "exc_info"};
    Py_ssize_t i, nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    int k;

    if (nargs + nkw > 3) {
        PyErr_Format(PyExc_TypeError,
                     "start_response() takes at most 3 arguments (%zd given)",
                     nargs + nkw);
        return -1;
    }
    out[0] = out[1] = out[2] = NULL;
    for (i = 0; i < nargs; i++)
        out[i] = args[i];
    for (i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        for (k = 0; k < 3; k++)
            if (PyUnicode_CompareWithASCIIString(name, names[k]) == 0)
                break;
        if (k == 3) {
            PyErr_Format(PyExc_TypeError,
                         "start_response() got an unexpected keyword "
                         "argument %R", name);
            return -1;
        }
        if (out[k]) {
            PyErr_Format(PyExc_TypeError,
                         "start_response() got multiple values for "
                         "argument '%s'", names[k]);
            return -1;
        }
        out[k] = args[nargs + i];
    }
    for (k = 0; k < 2; k++) {
        if (!out[k]) {
            PyErr_Format(PyExc_TypeError,
                         "start_response() missing required argument '%s'",
                         names[k]);
            return -1;
        }
    }
    if (!out[2])
        out[2] = Py_None;
    return 0;
}

/* What start_response's exc_info holds, checked as PEP 3333 asks (a
 * sys.exc_info() tuple) before any of it reaches CPython's error state,
 * which trusts its input: a non-exception there is written through as if
 * it were one (PyException_SetTraceback on None or an int), damaging memory
 * and killing the process later. 0: no exception (None, or (None, None,
 * None), which sys.exc_info() gives outside an except block); 1: *value
 * is an exception instance, *tb a traceback or NULL (borrowed from the
 * tuple); -1: a TypeError for the app. */
static int wsgi_exc_info_check(PyObject *exc_info, PyObject **value,
                               PyObject **tb)
{
    PyObject *t, *v, *b;

    if (exc_info == Py_None)
        return 0;
    if (!PyTuple_Check(exc_info) || PyTuple_GET_SIZE(exc_info) != 3) {
        PyErr_Format(PyExc_TypeError,
                     "exc_info must be None or a (type, value, traceback) "
                     "tuple from sys.exc_info(), not %.100s%s",
                     Py_TYPE(exc_info)->tp_name,
                     PyTuple_Check(exc_info) ? " of another length" : "");
        return -1;
    }
    t = PyTuple_GET_ITEM(exc_info, 0);
    v = PyTuple_GET_ITEM(exc_info, 1);
    b = PyTuple_GET_ITEM(exc_info, 2);
    if (t == Py_None && v == Py_None && b == Py_None)
        return 0;
    if (!PyExceptionInstance_Check(v)) {
        PyErr_Format(PyExc_TypeError,
                     "exc_info[1] must be an exception instance, not %.100s",
                     PyType_Check(v) ? "a class" : Py_TYPE(v)->tp_name);
        return -1;
    }
    /* PyExceptionClass_Check first: object and other non-exception
     * classes are supertypes of every exception type. */
    if (!PyExceptionClass_Check(t)
        || !PyType_IsSubtype(Py_TYPE(v), (PyTypeObject *)t)) {
        PyErr_Format(PyExc_TypeError,
                     "exc_info[0] must be the class of exc_info[1] "
                     "(%.100s), not %.100s%s",
                     Py_TYPE(v)->tp_name,
                     PyType_Check(t) ? ((PyTypeObject *)t)->tp_name
                                     : Py_TYPE(t)->tp_name,
                     PyType_Check(t) ? "" : " instance");
        return -1;
    }
    if (b != Py_None && !PyTraceBack_Check(b)) {
        PyErr_Format(PyExc_TypeError,
                     "exc_info[2] must be a traceback or None, not %.100s",
                     Py_TYPE(b)->tp_name);
        return -1;
    }
    *value = v;
    *tb = b == Py_None ? NULL : b;
    return 1;
}

static PyObject *wsgi_start_response(PyObject *self, PyObject *const *args,
                                     Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *a[3], *value = NULL, *tb = NULL;
    pyh_request *req = wsgi_live(self);
    int has_exc;

    if (!req || wsgi_sr_args(args, nargs, kwnames, a) < 0)
        return NULL;
    if ((has_exc = wsgi_exc_info_check(a[2], &value, &tb)) < 0)
        return NULL;
    if (req->headers_sent && has_exc) {
        /* Too late to change the response: re-raise the app's exception
         * (raise value.with_traceback(tb)). The type given to CPython is
         * the value's own, so it never builds a new exception from the
         * pair (3.12+ would, from a base class). */
        PyErr_Restore(Py_NewRef(Py_TYPE(value)), Py_NewRef(value),
                      tb ? Py_NewRef(tb) : NULL);
        return NULL;
    }
    if (req->headers_sent && a[2] != Py_None) {
        /* (None, None, None): an error page built outside an except
         * block, with nothing to re-raise and a response already out. */
        PyErr_SetString(PyExc_RuntimeError,
                        "start_response() called after the response headers "
                        "were sent, with an exc_info that holds no "
                        "exception (sys.exc_info() outside an except "
                        "block?)");
        return NULL;
    }
    /* A second call needs an exc_info tuple. (None, None, None) counts, as
     * in wsgiref and mod_wsgi: the app means to replace its headers. */
    if (a[2] == Py_None && req->started) {
        PyErr_SetString(PyExc_RuntimeError,
                        "start_response() called a second time without "
                        "exc_info");
        return NULL;
    }
    if (wsgi_parse_status(req, a[0]) < 0 || wsgi_parse_headers(req, a[1]) < 0)
        return NULL;
    req->started = 1;
    return Py_NewRef(((request_object *)self)->write);
}

static int wsgi_send(pyh_request *req, const char *data, apr_size_t len,
                     int flush);

static PyObject *wsgi_write(PyObject *self, PyObject *data)
{
    pyh_request *req = wsgi_live(self);
    Py_buffer view;
    int rc;
    if (!req)
        return NULL;
    if (!PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "write() takes bytes, not %.100s",
                     Py_TYPE(data)->tp_name);
        return NULL;
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    rc = wsgi_send(req, view.buf, (apr_size_t)view.len, 1);
    PyBuffer_Release(&view);
    if (rc < 0)
        return NULL;
    if (rc > 0) {
        PyErr_SetString(PyExc_OSError, "client connection closed");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The bound methods hold the object, so it is freed only after
 * wsgi_request_put has let go of them. */
static void request_dealloc(PyObject *self)
{
    request_object *ro = (request_object *)self;
    PyTypeObject *tp = Py_TYPE(self);
    Py_XDECREF(ro->input);
    Py_XDECREF(ro->errors);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef request_methods[] = {
    {"start_response", (PyCFunction)(void (*)(void))wsgi_start_response,
     METH_FASTCALL | METH_KEYWORDS,
     "start_response(status, response_headers, exc_info=None)"},
    {"write", wsgi_write, METH_O, "write(bytes): send body data now"},
    {NULL, NULL, 0, NULL}
};

static PyType_Slot request_slots[] = {
    {Py_tp_dealloc, request_dealloc},
    {Py_tp_methods, request_methods},
    {0, NULL}
};

static PyType_Spec request_spec = {
    "pyhost.Request", sizeof(request_object), 0, Py_TPFLAGS_DEFAULT,
    request_slots
};

/* A request object for req, a spare one when there is one; NULL with an
 * exception set on failure. */
static request_object *wsgi_request_get(pyh_interp *in, pyh_request *req)
{
    request_object *ro = NULL;

    PYH_LOCK(&in->lock);
    if (in->spare_count)
        ro = (request_object *)in->spare_requests[--in->spare_count];
    PYH_UNLOCK(&in->lock);
    if (!ro) {
        if (!(ro = PyObject_New(request_object, in->request_type)))
            return NULL;
        ro->req = NULL;
        ro->start_response = ro->write = ro->errors = NULL;
        if (!(ro->input = pyh_input_new(in))
            || !(ro->errors = pyh_log_new(in, NULL, APLOG_ERR))
            || !(ro->start_response = PyObject_GetAttr(
                     (PyObject *)ro, in->consts[PYH_C_START_RESPONSE]))
            || !(ro->write = PyObject_GetAttr((PyObject *)ro,
                                              in->consts[PYH_C_WRITE]))) {
            Py_CLEAR(ro->start_response);
            Py_DECREF(ro);
            return NULL;
        }
    }
    ro->req = req;
    pyh_input_attach(ro->input, req);
    pyh_log_attach(ro->errors, req);
    return ro;
}

/* Ends ro's request: its methods, input and errors raise from now on. */
static void wsgi_request_detach(request_object *ro)
{
    ro->req = NULL;
    pyh_input_detach(ro->input);
    pyh_log_detach(ro->errors);
}

/* Lets go of a detached ro: it goes to the spares if this is the last
 * reference to it and nobody holds its methods, input or errors (each of
 * those is then referenced by ro alone, and ro by us and its two bound
 * methods). */
static void wsgi_request_put(pyh_interp *in, request_object *ro)
{
    PyObject *self = (PyObject *)ro;
    int kept = 0;

    if (Py_REFCNT(self) == 3 && Py_REFCNT(ro->start_response) == 1
        && Py_REFCNT(ro->write) == 1 && Py_REFCNT(ro->input) == 1
        && Py_REFCNT(ro->errors) == 1) {
        PYH_LOCK(&in->lock);
        if (in->spare_count < PYH_SPARE_REQUESTS) {
            in->spare_requests[in->spare_count++] = self;
            kept = 1;
        }
        PYH_UNLOCK(&in->lock);
    }
    if (kept)
        return;
    Py_CLEAR(ro->start_response);
    Py_CLEAR(ro->write);
    Py_DECREF(self);
}

/* Frees the spare request objects (and the environ caches) of an
 * interpreter about to end; its GIL is held. */
void pyh_wsgi_interp_clear(pyh_interp *in)
{
    while (in->spare_count) {
        request_object *ro =
            (request_object *)in->spare_requests[--in->spare_count];
        Py_CLEAR(ro->start_response);
        Py_CLEAR(ro->write);
        Py_DECREF(ro);
    }
    pyh_env_interp_clear(in);
}

/* ---- wsgi.file_wrapper ------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *filelike;
    Py_ssize_t blksize;
} file_wrapper_object;

static PyObject *fw_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"filelike", "blksize", NULL};
    PyObject *filelike;
    Py_ssize_t blksize = 8192;
    file_wrapper_object *fw;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|n:file_wrapper", kwlist,
                                     &filelike, &blksize))
        return NULL;
    if (blksize <= 0) {
        PyErr_SetString(PyExc_ValueError, "blksize must be positive");
        return NULL;
    }
    if (!(fw = (file_wrapper_object *)type->tp_alloc(type, 0)))
        return NULL;
    fw->filelike = Py_NewRef(filelike);
    fw->blksize = blksize;
    return (PyObject *)fw;
}

static int fw_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(((file_wrapper_object *)self)->filelike);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int fw_clear(PyObject *self)
{
    Py_CLEAR(((file_wrapper_object *)self)->filelike);
    return 0;
}

static void fw_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    fw_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *fw_iternext(PyObject *self)
{
    file_wrapper_object *fw = (file_wrapper_object *)self;
    PyObject *data;
    if (!fw->filelike)
        return NULL;
    data = PyObject_CallMethod(fw->filelike, "read", "n", fw->blksize);
    if (data && PyObject_IsTrue(data) == 0) {
        Py_DECREF(data);
        return NULL;
    }
    return data;
}

static PyObject *fw_close(PyObject *self, PyObject *unused)
{
    file_wrapper_object *fw = (file_wrapper_object *)self;
    PyObject *res;
    (void)unused;
    if (!fw->filelike || !PyObject_HasAttrString(fw->filelike, "close"))
        Py_RETURN_NONE;
    res = PyObject_CallMethod(fw->filelike, "close", NULL);
    return res;
}

static PyObject *fw_iter(PyObject *self)
{
    return Py_NewRef(self);
}

static PyMethodDef fw_methods[] = {
    {"close", fw_close, METH_NOARGS, "close the wrapped file"},
    {NULL, NULL, 0, NULL}
};

static PyType_Slot fw_slots[] = {
    {Py_tp_new, fw_new},
    {Py_tp_dealloc, fw_dealloc},
    {Py_tp_traverse, fw_traverse},
    {Py_tp_clear, fw_clear},
    {Py_tp_iter, fw_iter},
    {Py_tp_iternext, fw_iternext},
    {Py_tp_methods, fw_methods},
    {Py_tp_doc, "wsgi.file_wrapper(filelike, blksize=8192): a file sent by "
                "Apache (sendfile) when it is a regular file"},
    {0, NULL}
};

static PyType_Spec fw_spec = {
    "pyhost.FileWrapper", sizeof(file_wrapper_object), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, fw_slots
};

int pyh_wsgi_init_types(pyh_interp *in)
{
    in->request_type = (PyTypeObject *)PyType_FromSpec(&request_spec);
    if (!in->request_type)
        return -1;
    in->file_wrapper_type = (PyTypeObject *)PyType_FromSpec(&fw_spec);
    return in->file_wrapper_type ? 0 : -1;
}

/* ---- output -------------------------------------------------------------- */

static int wsgi_is_hop_by_hop(const char *name)
{
    static const char *const hop[] = {
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
        "TE", "Trailer", "Transfer-Encoding", "Upgrade", NULL
    };
    int i;
    for (i = 0; hop[i]; i++)
        if (!strcasecmp(name, hop[i]))
            return 1;
    return 0;
}

/* Moves status and headers into the request_rec. With WSGIErrorOverride,
 * an error status is kept back for Apache's own error page instead. */
static void wsgi_commit_headers(pyh_request *req)
{
    request_rec *r = req->r;
    int i;
    req->headers_sent = 1;
    if (req->conf.error_override && req->status >= 400) {
        req->override_status = req->status;
        return;
    }
    /* Apache refused the body and answered with its own status (413...):
     * that is the status the access log must show, not the app's. */
    if (req->input_status != AP_FILTER_ERROR) {
        r->status = req->status;
        r->status_line = req->status_line;
    }
    for (i = 0; i < req->headers->nelts; i++) {
        pyh_header *h = &APR_ARRAY_IDX(req->headers, i, pyh_header);
        if (!strcasecmp(h->name, "Content-Type")) {
            ap_set_content_type(r, h->value);
        }
        else if (!strcasecmp(h->name, "Content-Length")) {
            ap_set_content_length(r, req->content_length);
        }
        else if (wsgi_is_hop_by_hop(h->name)) {
            /* Apache owns the connection; honour only a request to close. */
            if (!strcasecmp(h->name, "Connection")
                && ap_find_token(r->pool, h->value, "close"))
                r->connection->keepalive = AP_CONN_CLOSE;
        }
        else {
            apr_table_addn(r->headers_out, h->name, h->value);
        }
    }
}

/* Passes the pending brigade with the GIL released. 1: client gone. */
static int wsgi_pass(pyh_request *req)
{
    request_rec *r = req->r;
    apr_status_t rv;
    if (pyh_input_answered(req))
        return 1;
    req->passed = 1;
    Py_BEGIN_ALLOW_THREADS
    rv = ap_pass_brigade(r->output_filters, req->obb);
    Py_END_ALLOW_THREADS
    apr_brigade_cleanup(req->obb);
    if (rv != APR_SUCCESS || r->connection->aborted) {
        req->client_gone = 1;
        return 1;
    }
    return 0;
}

/* Appends body data (headers go first, at the first non-empty chunk).
 * Returns 0, 1 when the client went away, or -1 with an exception. */
static int wsgi_send(pyh_request *req, const char *data, apr_size_t len,
                     int flush)
{
    apr_bucket_alloc_t *ba = req->r->connection->bucket_alloc;
    if (!req->started) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the app sent body data before calling "
                        "start_response()");
        return -1;
    }
    if (req->client_gone)
        return 1;
    if (!len)
        return 0;
    if (!req->headers_sent)
        wsgi_commit_headers(req);
    if (req->override_status)
        return 0;
    if (req->content_length >= 0
        && (apr_off_t)len > req->content_length - req->body_sent)
        len = (apr_size_t)(req->content_length - req->body_sent);
    /* HEAD: once the headers are out (sent_bodyct), body can only be
     * eaten; HTTP/1.1's header filter does, mod_http2 only in the brigade
     * that carried the headers and sends the rest as DATA frames, which
     * clients reject (PROTOCOL_ERROR). Before that it is kept, so that
     * Apache can still count it for Content-Length as for GET. */
    if (len && !(req->r->header_only && req->r->sent_bodyct))
        APR_BRIGADE_INSERT_TAIL(req->obb,
                                apr_bucket_transient_create(data, len, ba));
    req->body_sent += len;
    if (!flush)
        return 0;
    APR_BRIGADE_INSERT_TAIL(req->obb, apr_bucket_flush_create(ba));
    return wsgi_pass(req);
}

/* A body larger than this, still in the app's memory (transient buckets),
 * is written before the pass returns rather than left to the core output
 * filter, which would copy whatever the socket does not take at once into
 * buckets of its own (up to the whole body) and then write those. */
#define WSGI_COPY_AVOID 65536

/* Appends a FLUSH when the pending body is large and its length is known
 * from Content-Length (without one, Apache's content-length filter must
 * see the whole body before EOS to set the header, and a FLUSH would end
 * that look early: the response would go chunked). */
static void wsgi_flush_if_large(pyh_request *req)
{
    apr_off_t pending = 0;
    if (req->content_length < 0
        || apr_brigade_length(req->obb, 0, &pending) != APR_SUCCESS
        || pending <= WSGI_COPY_AVOID)
        return;
    APR_BRIGADE_INSERT_TAIL(req->obb,
                            apr_bucket_flush_create(req->r->connection->bucket_alloc));
}

/* Ends the response after the app's iterable is exhausted. */
static int wsgi_finish(pyh_request *req)
{
    request_rec *r = req->r;
    if (!req->started) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the app returned without calling start_response()");
        return -1;
    }
    if (req->client_gone)
        return 1;
    if (!req->headers_sent)
        wsgi_commit_headers(req);
    if (req->override_status)
        return 0;
    if (req->content_length >= 0 && req->body_sent < req->content_length
        && !r->header_only) {
        PyErr_Format(PyExc_RuntimeError,
                     "the app sent %" APR_OFF_T_FMT " body bytes but its "
                     "Content-Length header says %" APR_OFF_T_FMT,
                     req->body_sent, req->content_length);
        return -1;
    }
    wsgi_flush_if_large(req);
    APR_BRIGADE_INSERT_TAIL(req->obb,
                            apr_bucket_eos_create(r->connection->bucket_alloc));
    return wsgi_pass(req);
}

/* Cuts a response whose headers are already out: the client sees an
 * incomplete body and a closed connection, never a fake success. */
static void wsgi_abort_response(pyh_request *req)
{
    request_rec *r = req->r;
    apr_bucket_alloc_t *ba = r->connection->bucket_alloc;
    apr_brigade_cleanup(req->obb);
    r->connection->keepalive = AP_CONN_CLOSE;
    APR_BRIGADE_INSERT_TAIL(req->obb, ap_bucket_error_create(HTTP_BAD_GATEWAY,
                                                            NULL, r->pool, ba));
    APR_BRIGADE_INSERT_TAIL(req->obb, apr_bucket_eos_create(ba));
    wsgi_pass(req);
}

static int wsgi_send_item(pyh_request *req, PyObject *item, int flush)
{
    if (!PyBytes_Check(item)) {
        PyErr_Format(PyExc_TypeError,
                     "response body items must be bytes, not %.100s",
                     Py_TYPE(item)->tp_name);
        return -1;
    }
    return wsgi_send(req, PyBytes_AS_STRING(item),
                     (apr_size_t)PyBytes_GET_SIZE(item), flush);
}

/* filelike.<name>() as a non-negative integer, or -1 (nothing raised)
 * when it has no such method or it fails: the caller then iterates. */
static long long wsgi_call_offset(PyObject *filelike, PyObject *name)
{
    PyObject *res = PyObject_CallMethodNoArgs(filelike, name);
    long long v = -1;
    if (res) {
        v = PyLong_AsLongLong(res);
        Py_DECREF(res);
    }
    if (PyErr_Occurred()) {
        PyErr_Clear();
        v = -1;
    }
    return v < 0 ? -1 : v;
}

/* A descriptor of the app's file that Apache owns: a dup made in the
 * request pool with APR's own file cleanup, which follows the file bucket
 * when a filter sets it aside into a longer-lived pool. The bucket must
 * not use the app's descriptor: the app closes it (close(), or the file
 * object's finalizer) as soon as the handler returns, and not every reader
 * has read the bucket by then. mod_http2 reads it later, on its own
 * thread, whatever FLUSH was sent; with the app's descriptor it found it
 * closed (EBADF: cut responses), or worse, reused for another request's
 * file or socket. Close-on-exec is set again as on every descriptor
 * Python makes (PEP 446): dup() clears it. */
apr_status_t pyh_own_file(request_rec *r, apr_os_file_t fd,
                          apr_int32_t flags, apr_file_t **own)
{
    apr_file_t *app_file = NULL;
    apr_os_file_t dup_fd;
    apr_status_t rv;

    *own = NULL;
    /* A view of the app's descriptor, only to dup it; no cleanup (it is
     * not ours to close). */
    if ((rv = apr_os_file_put(&app_file, &fd, flags, r->pool)) != APR_SUCCESS)
        return rv;
    if ((rv = apr_file_dup(own, app_file, r->pool)) != APR_SUCCESS)
        return rv;
    if ((rv = apr_os_file_get(&dup_fd, *own)) == APR_SUCCESS
        && fcntl(dup_fd, F_SETFD, FD_CLOEXEC) < 0)
        rv = APR_FROM_OS_ERROR(errno);
    if (rv != APR_SUCCESS) {
        apr_file_close(*own);
        *own = NULL;
    }
    return rv;
}

/* Sends a wsgi.file_wrapper of a regular file as a file bucket, from the
 * file's current position. 2: not a plain file, iterate it instead. */
static int wsgi_send_file(pyh_request *req, file_wrapper_object *fw)
{
    request_rec *r = req->r;
    core_dir_config *core = ap_get_core_module_config(r->per_dir_config);
    apr_file_t *af = NULL;
    apr_os_file_t fd;
    apr_off_t pos, length;
    apr_int32_t flags = APR_FOPEN_READ;
    apr_status_t rv;
    struct stat st;
    char err[120];

    if (!fw->filelike || !req->started)
        return 2;
    fd = (apr_os_file_t)wsgi_call_offset(fw->filelike,
                                         req->interp->consts[PYH_C_FILENO]);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return 2;
    /* tell() knows about data the file object has buffered. */
    pos = (apr_off_t)wsgi_call_offset(fw->filelike,
                                      req->interp->consts[PYH_C_TELL]);
    if (pos < 0)
        return 2;
    length = st.st_size > pos ? st.st_size - pos : 0;
    if (req->content_length >= 0 && length > req->content_length - req->body_sent)
        length = req->content_length - req->body_sent;
    if (core && core->enable_sendfile == ENABLE_SENDFILE_ON)
        flags |= APR_FOPEN_SENDFILE_ENABLED;
    /* Before anything is committed, so that a failure (EMFILE) is a 500
     * with one log entry, not a cut response. */
    if (length && (rv = pyh_own_file(r, fd, flags, &af)) != APR_SUCCESS) {
        PyErr_Format(PyExc_OSError,
                     "could not duplicate the descriptor of the "
                     "wsgi.file_wrapper's file for Apache: %s",
                     apr_strerror(rv, err, sizeof(err)));
        return -1;
    }
    if (!req->headers_sent && req->content_length < 0) {
        req->content_length = length; /* the whole body is this file */
        ap_set_content_length(r, length);
    }
    if (!length)
        return wsgi_finish(req);
    if (!req->headers_sent)
        wsgi_commit_headers(req);
    if (req->override_status)
        return 0;
    /* HEAD after write() sent the headers: no body (see wsgi_send). */
    if (!(r->header_only && r->sent_bodyct))
        apr_brigade_insert_file(req->obb, af, pos, length, r->pool);
    req->body_sent += length;
    /* One pass: the file, a FLUSH when it is large (wsgi_finish), EOS. */
    return wsgi_finish(req);
}

#define WSGI_SMALL_BODY_ITEMS 8

/* A list or tuple body: known whole, so one brigade, no flushes, and
 * Apache can set Content-Length itself. The items must outlive the pass
 * (it runs without the GIL, and another thread may change a list): a
 * tuple keeps its own; a list's are held here. */
static int wsgi_consume_sequence(pyh_request *req, PyObject *result)
{
    PyObject *small[WSGI_SMALL_BODY_ITEMS], *seq = NULL, **items;
    Py_ssize_t i, n = PySequence_Fast_GET_SIZE(result);
    int rc = 0;

    if (PyTuple_CheckExact(result)) {
        items = PySequence_Fast_ITEMS(result);
    }
    else if (n <= WSGI_SMALL_BODY_ITEMS) {
        for (i = 0; i < n; i++)
            small[i] = Py_NewRef(PyList_GET_ITEM(result, i));
        items = small;
    }
    else {
        if (!(seq = PySequence_Tuple(result)))
            return -1;
        n = PyTuple_GET_SIZE(seq);
        items = PySequence_Fast_ITEMS(seq);
    }
    for (i = 0; rc == 0 && i < n; i++)
        rc = wsgi_send_item(req, items[i], 0);
    if (rc == 0)
        rc = wsgi_finish(req);
    if (items == small)
        for (i = 0; i < n; i++)
            Py_DECREF(small[i]);
    Py_XDECREF(seq);
    return rc;
}

/* Sends the app's iterable. 0: done; 1: client gone; -1: app error. */
static int wsgi_consume(pyh_interp *in, pyh_request *req, PyObject *result)
{
    PyObject *it, *item;
    int rc = 0;

    if (Py_IS_TYPE(result, in->file_wrapper_type)) {
        rc = wsgi_send_file(req, (file_wrapper_object *)result);
        if (rc != 2)
            return rc;
        rc = 0;
    }
    if (PyList_CheckExact(result) || PyTuple_CheckExact(result))
        return wsgi_consume_sequence(req, result);
    if (!(it = PyObject_GetIter(result)))
        return -1;
    while (rc == 0 && (item = PyIter_Next(it))) {
        rc = wsgi_send_item(req, item, 1);
        Py_DECREF(item);
    }
    Py_DECREF(it);
    if (rc == 0 && PyErr_Occurred())
        rc = -1;
    if (rc == 0)
        rc = wsgi_finish(req);
    return rc;
}

/* Calls result.close() if it has one; exactly once per request. */
static void wsgi_close(pyh_interp *in, pyh_request *req, PyObject *result)
{
    PyObject *close, *res;
    pyh_err e;
    /* Neither type has a close(); looking would build an AttributeError. */
    if (PyList_CheckExact(result) || PyTuple_CheckExact(result))
        return;
    pyh_err_take(&e);
    close = PyObject_GetAttr(result, in->consts[PYH_C_CLOSE]);
    if (!close) {
        PyErr_Clear();
    }
    else {
        res = PyObject_CallNoArgs(close);
        Py_DECREF(close);
        if (res)
            Py_DECREF(res);
        else
            pyh_log_exception(in, req->r, req->r->server,
                              "PYH0103: exception in the response's close()");
    }
    pyh_err_put(&e);
}

int pyh_wsgi_handle(pyh_interp *in, pyh_request *req, PyObject *app)
{
    request_rec *r = req->r;
    PyObject *environ = NULL, *result = NULL, *args[2];
    request_object *ro;
    int rc = -1, status = OK;
    const char *stage = "PYH0100: exception in WSGI app";

    /* mod_mime typed the script file; the response's type is the app's. */
    r->content_type = NULL;
    r->content_encoding = NULL;
    r->content_languages = NULL;
    req->content_length = -1;
    req->obb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    if ((ro = wsgi_request_get(in, req))) {
        req->request_obj = (PyObject *)ro;
        req->input_obj = ro->input;
        req->errors_obj = ro->errors;
    }
    if (!req->vars[PYH_K_REQUEST_METHOD])
        pyh_env_collect(req);
    if (!ro || !(environ = pyh_environ(in, req))) {
        stage = "PYH0101: building the WSGI environ";
        goto done;
    }
    pyh_current_request = req;
    args[0] = environ;
    args[1] = ro->start_response;
    result = PyObject_Vectorcall(app, args, 2, NULL);
    if (result) {
        rc = wsgi_consume(in, req, result);
        wsgi_close(in, req, result);
    }
done:
    if (rc < 0)
        pyh_log_exception(in, r, r->server, stage);
    if (rc < 0 && req->passed) {
        wsgi_abort_response(req);
    }
    else if (rc < 0) {
        /* Nothing reached the filters yet (a whole-list body is passed in
         * one go at its end): drop what the app set and let Apache send
         * the error page. A body the app could not read deserves that
         * failure's own status. */
        apr_brigade_cleanup(req->obb);
        status = req->input_status ? req->input_status
                                   : HTTP_INTERNAL_SERVER_ERROR;
        if (req->input_status != AP_FILTER_ERROR)
            r->status = HTTP_OK; /* else keep the status Apache sent */
        r->status_line = NULL;
        r->content_type = NULL;
        apr_table_clear(r->headers_out);
    }
    else if (req->override_status) {
        status = req->override_status;
    }
    pyh_current_request = NULL;
    if (ro)
        wsgi_request_detach(ro);
    /* may run the app's code (a generator's finally): after the detach */
    Py_XDECREF(result);
    Py_XDECREF(environ);
    if (ro)
        wsgi_request_put(in, ro);
    req->request_obj = req->input_obj = req->errors_obj = NULL;
    return status;
}
