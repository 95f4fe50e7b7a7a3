/* wsgi.c - the WSGI adapter (PEP 3333): builds environ from the request,
 * implements start_response and write(), validates what the app returns,
 * and sends the response through httpd's output filters, with
 * wsgi.file_wrapper turned into a file bucket. Whatever the app does
 * wrong ends only its own request. */
#include "pyhost.h"

#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"
#include "apr_buckets.h"
#include "apr_strings.h"

#include <sys/stat.h>

#define WSGI_HEADER_KEYS_MAX 256

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

static PyObject *wsgi_start_response(PyObject *self, PyObject *const *args,
                                     Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *a[3], *exc_info;
    pyh_request *req = wsgi_live(self);

    if (!req || wsgi_sr_args(args, nargs, kwnames, a) < 0)
        return NULL;
    exc_info = a[2];
    if (exc_info != Py_None) {
        if (req->headers_sent) {
            /* Too late to change the response: re-raise for the app. */
            if (!PyTuple_Check(exc_info) || PyTuple_GET_SIZE(exc_info) != 3) {
                PyErr_SetString(PyExc_TypeError,
                                "exc_info must be a (type, value, traceback) "
                                "tuple");
                return NULL;
            }
            PyErr_Restore(Py_NewRef(PyTuple_GET_ITEM(exc_info, 0)),
                          Py_NewRef(PyTuple_GET_ITEM(exc_info, 1)),
                          Py_NewRef(PyTuple_GET_ITEM(exc_info, 2)));
            return NULL;
        }
    }
    else if (req->started) {
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
        if (!h && apr_hash_count(in->header_keys) < WSGI_HEADER_KEYS_MAX) {
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
static int wsgi_map_head(pyh_request *req)
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

void pyh_env_collect(pyh_request *req)
{
    request_rec *r = req->r;
    conn_rec *c = r->connection;
    const char **v = req->vars;
    const char *pg = req->conf.process_group;

    v[PYH_K_REQUEST_METHOD] = wsgi_map_head(req) ? "GET" : r->method;
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
    v[PYH_K_REQUEST_SCHEME] = ap_http_scheme(r);
    v[PYH_K_SCRIPT_FILENAME] = r->filename;
    v[PYH_K_DOCUMENT_ROOT] = ap_document_root(r);
    v[PYH_K_CONTEXT_PREFIX] = ap_context_prefix(r);
    v[PYH_K_CONTEXT_DOCUMENT_ROOT] = ap_context_document_root(r);
    v[PYH_K_MODWSGI_PROCESS_GROUP] =
        (!pg || !strcmp(pg, "%{GLOBAL}")) ? "" : pg;
    v[PYH_K_MODWSGI_APPLICATION_GROUP] = req->app_group;
    v[PYH_K_MODWSGI_CALLABLE_OBJECT] = req->conf.callable_object;
    v[PYH_K_MODWSGI_SCRIPT_RELOADING] = req->conf.script_reloading ? "1" : "0";
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
    PYH_K_SERVER_SOFTWARE,
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
    PYH_K_AUTH_TYPE,
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
static PyObject *wsgi_environ_fast(pyh_interp *in, pyh_request *req)
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
static PyObject *wsgi_environ_full(pyh_interp *in, pyh_request *req)
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
static PyObject *wsgi_environ(pyh_interp *in, pyh_request *req)
{
    PyObject *env = wsgi_environ_fast(in, req);
    if (env || PyErr_Occurred())
        return env;
    return wsgi_environ_full(in, req);
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
    r->status = req->status;
    r->status_line = req->status_line;
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
    if (len) {
        APR_BRIGADE_INSERT_TAIL(req->obb,
                                apr_bucket_transient_create(data, len, ba));
        req->body_sent += len;
    }
    if (!flush)
        return 0;
    APR_BRIGADE_INSERT_TAIL(req->obb, apr_bucket_flush_create(ba));
    return wsgi_pass(req);
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
    struct stat st;

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
    if (core && core->enable_sendfile == ENABLE_SENDFILE_ON)
        flags |= APR_FOPEN_SENDFILE_ENABLED;
    if (apr_os_file_put(&af, &fd, flags, r->pool) != APR_SUCCESS) {
        PyErr_SetString(PyExc_OSError, "could not wrap the file for Apache");
        return -1;
    }
    apr_brigade_insert_file(req->obb, af, pos, length, r->pool);
    req->body_sent += length;
    /* The flush makes Apache finish with the descriptor before the app's
     * close() can close it. */
    APR_BRIGADE_INSERT_TAIL(req->obb,
                            apr_bucket_flush_create(r->connection->bucket_alloc));
    if (wsgi_pass(req))
        return 1;
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
    if (!ro || !(environ = wsgi_environ(in, req))) {
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
        r->status = HTTP_OK;
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
