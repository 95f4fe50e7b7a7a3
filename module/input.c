/* input.c - wsgi.input: the request body read through httpd's input
 * filters (so chunked decoding, LimitRequestBody and 100-continue are
 * Apache's), with the GIL released around every network read. */
#include "pyhost.h"

#include "http_core.h"
#include "http_protocol.h"
#include "apr_buckets.h"
#include "apr_strings.h"

#define INPUT_CHUNK 65536
#define INPUT_LINE_CHUNK 8192
/* A read this big or smaller is allocated in one go from the size asked
 * or the Content-Length; a bigger one grows as the data comes. */
#define INPUT_PREALLOC (INPUT_CHUNK * 16)

typedef struct {
    PyObject_HEAD
    pyh_request *req;
    apr_off_t remaining;   /* body bytes not yet read; -1 when unknown */
} input_object;

/* What must be refused before the app runs, as mod_wsgi does: a transfer
 * coding other than a lone chunked (Apache decodes only chunked, so the
 * app would get the rest still encoded: 501); chunked when the location
 * has not asked for it (411); a Content-Length over LimitRequestBody (413
 * now, not after the app has started answering: the HTTP_IN filter would
 * send its own 413 in the middle of the app's response). A Content-Length
 * that is not a number never gets here: Apache answers 400 itself. */
int pyh_input_check(request_rec *r, int chunked_ok)
{
    const char *tenc = apr_table_get(r->headers_in, "Transfer-Encoding");
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_off_t length, limit;
    char *end;

    if (tenc && strcasecmp(tenc, "chunked")) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "PYH0080: Transfer-Encoding '%s' refused (501): only "
                      "chunked alone is decoded",
                      tenc);
        return HTTP_NOT_IMPLEMENTED;
    }
    if (tenc && !chunked_ok) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "PYH0023: chunked request body refused (411); enable "
                      "WSGIChunkedRequest On for this location to accept it");
        return HTTP_LENGTH_REQUIRED;
    }
    limit = ap_get_limit_req_body(r);
    if (!tenc && cl && limit
        && apr_strtoff(&length, cl, &end, 10) == APR_SUCCESS && !*end
        && length > limit) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "PYH0081: Content-Length %" APR_OFF_T_FMT " is over "
                      "LimitRequestBody %" APR_OFF_T_FMT " (413)",
                      length, limit);
        return HTTP_REQUEST_ENTITY_TOO_LARGE;
    }
    return OK;
}

/* A body read failed: whatever of the body is still on the wire cannot
 * be found again, so the connection must not be reused. Marking it closed
 * also stops ap_discard_request_body, at the request's end, from waiting a
 * second Timeout for bytes a client that stalled will not send. In daemon
 * mode the Apache child reads the body for the daemon through here too. */
static apr_status_t input_failed(pyh_request *req, apr_status_t rv)
{
    apr_brigade_cleanup(req->ibb);
    req->r->connection->keepalive = AP_CONN_CLOSE;
    return rv;
}

/* Reads at most `want` bytes into dest; *got == 0 with input_eos set
 * means end of body. Called without the GIL. */
apr_status_t pyh_input_fill(pyh_request *req, char *dest, apr_size_t want,
                            apr_size_t *got)
{
    request_rec *r = req->r;
    apr_bucket *b;
    apr_status_t rv;

    *got = 0;
    if (!req->ibb)
        req->ibb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    while (!*got && !req->input_eos) {
        rv = ap_get_brigade(r->input_filters, req->ibb, AP_MODE_READBYTES,
                            APR_BLOCK_READ, want);
        if (rv == APR_SUCCESS && APR_BRIGADE_EMPTY(req->ibb))
            rv = APR_EGENERAL; /* a blocking read must progress */
        if (rv != APR_SUCCESS)
            return input_failed(req, rv);
        for (b = APR_BRIGADE_FIRST(req->ibb); b != APR_BRIGADE_SENTINEL(req->ibb);
             b = APR_BUCKET_NEXT(b)) {
            const char *data;
            apr_size_t len;
            if (APR_BUCKET_IS_EOS(b)) {
                req->input_eos = 1;
                break;
            }
            if (APR_BUCKET_IS_METADATA(b))
                continue;
            rv = apr_bucket_read(b, &data, &len, APR_BLOCK_READ);
            if (rv != APR_SUCCESS)
                return input_failed(req, rv);
            if (len > want - *got) /* READBYTES promises at most `want` */
                return input_failed(req, APR_EGENERAL);
            if (!len)
                continue; /* an empty bucket's data may be NULL */
            memcpy(dest + *got, data, len);
            *got += len;
        }
        apr_brigade_cleanup(req->ibb);
    }
    return APR_SUCCESS;
}

/* pyh_input_fill, keeping count of the body bytes still expected. */
static apr_status_t input_fill(pyh_request *req, input_object *io, char *dest,
                               apr_size_t want, apr_size_t *got)
{
    apr_status_t rv = pyh_input_fill(req, dest, want, got);
    if (rv != APR_SUCCESS)
        return rv;
    if (io->remaining > 0)
        io->remaining -= (apr_off_t)*got < io->remaining ? (apr_off_t)*got
                                                         : io->remaining;
    if (req->input_eos)
        io->remaining = 0;
    return APR_SUCCESS;
}

/* input_fill with the GIL released, until at least `least` bytes came or
 * the body ended (one GIL release for a whole sized read, not one per
 * ~8 KB that the filters hand over); raises OSError on failure and keeps
 * the HTTP status that failure deserves (413, 400, 408) for the handler,
 * or AP_FILTER_ERROR when Apache's HTTP_IN filter has sent its own error
 * response (a bad chunk, a chunked body over LimitRequestBody). */
static int input_pull(input_object *io, char *dest, apr_size_t want,
                      apr_size_t least, apr_size_t *got)
{
    pyh_request *req = io->req;
    apr_status_t rv = APR_SUCCESS;
    apr_size_t n;
    char err[120];

    *got = 0;
    Py_BEGIN_ALLOW_THREADS
    do {
        rv = input_fill(req, io, dest + *got, want - *got, &n);
        *got += n;
    } while (rv == APR_SUCCESS && *got < least && !req->input_eos);
    Py_END_ALLOW_THREADS
    if (rv == APR_SUCCESS)
        return 0;
    req->input_status = ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
    req->input_eos = 1;
    if (req->input_status == AP_FILTER_ERROR)
        PyErr_SetString(PyExc_OSError,
                        "the request body was refused: Apache has answered "
                        "the client itself (see its error log entry)");
    else
        PyErr_Format(PyExc_OSError,
                     "error reading the request body: %s (HTTP %d)",
                     apr_strerror(rv, err, sizeof(err)), req->input_status);
    return -1;
}

static int input_check(input_object *io)
{
    if (!io->req) {
        PyErr_SetString(PyExc_ValueError,
                        "wsgi.input used after its request ended");
        return -1;
    }
    return 0;
}

static apr_size_t input_buffered(pyh_request *req)
{
    return req->ibuf_len - req->ibuf_pos;
}

/* The first buffered byte. Before the first readline there is no buffer,
 * and even NULL + 0 is undefined (UBSan says so). */
static const char *input_head(pyh_request *req)
{
    return req->ibuf ? req->ibuf + req->ibuf_pos : "";
}

/* Moves up to n buffered bytes to dest. */
static apr_size_t input_take(pyh_request *req, char *dest, apr_size_t n)
{
    apr_size_t have = input_buffered(req);
    if (n > have)
        n = have;
    if (!n)
        return 0; /* ibuf may be NULL: memcpy must not see it, even for 0 */
    memcpy(dest, input_head(req), n);
    req->ibuf_pos += n;
    return n;
}

/* Reads exactly `want` bytes unless the body ends first, into one bytes
 * object sized up front: only for sizes up to INPUT_PREALLOC. */
static PyObject *input_read_sized(input_object *io, apr_size_t want)
{
    pyh_request *req = io->req;
    PyObject *out = PyBytes_FromStringAndSize(NULL, want), *shorter;
    char *dest;
    apr_size_t have, got;

    if (!out)
        return NULL;
    dest = PyBytes_AS_STRING(out);
    have = input_take(req, dest, want);
    while (have < want && !req->input_eos) {
        if (input_pull(io, dest + have, want - have, want - have, &got) < 0) {
            Py_DECREF(out);
            return NULL;
        }
        have += got;
    }
    if (have == want)
        return out;
    shorter = PyBytes_FromStringAndSize(dest, have);
    Py_DECREF(out);
    return shorter;
}

/* Reads up to `want` bytes (APR_SIZE_MAX: to the end of the body) into a
 * buffer that grows only as data arrives: a Content-Length or a size
 * argument is a claim, and 2^63 of it must cost no more than the bytes
 * the client really sends. */
static PyObject *input_read_growing(input_object *io, apr_size_t want)
{
    pyh_request *req = io->req;
    /* A body of known length past INPUT_PREALLOC starts at that much, as a
     * read of that size would; one of unknown length (chunked) smaller. */
    apr_size_t cap = input_buffered(req)
                     + (io->remaining >= 0 ? INPUT_PREALLOC : INPUT_CHUNK);
    apr_size_t have, got;
    char *buf, *grown;
    PyObject *out;

    if (cap > want)
        cap = want;
    if (!(buf = PyMem_Malloc(cap ? cap : 1)))
        return PyErr_NoMemory();
    have = input_take(req, buf, cap);
    while (have < want && !req->input_eos) {
        if (have == cap) {
            cap = cap > want / 2 ? want : cap * 2;
            if (!(grown = PyMem_Realloc(buf, cap))) {
                PyMem_Free(buf);
                return PyErr_NoMemory();
            }
            buf = grown;
        }
        /* fill what is allocated before taking the GIL back */
        if (input_pull(io, buf + have, cap - have, cap - have, &got) < 0) {
            PyMem_Free(buf);
            return NULL;
        }
        have += got;
    }
    out = PyBytes_FromStringAndSize(buf, have);
    PyMem_Free(buf);
    return out;
}

static int input_size_arg(Py_ssize_t nargs, PyObject *const *args,
                          Py_ssize_t *size)
{
    *size = -1;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "takes at most one argument");
        return -1;
    }
    if (nargs == 1 && args[0] != Py_None) {
        *size = PyLong_AsSsize_t(args[0]);
        if (*size == -1 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

static PyObject *input_read(PyObject *self, PyObject *const *args,
                            Py_ssize_t nargs)
{
    input_object *io = (input_object *)self;
    Py_ssize_t size;
    apr_size_t want;

    if (input_check(io) < 0 || input_size_arg(nargs, args, &size) < 0)
        return NULL;
    if (size < 0 && io->remaining < 0)
        return input_read_growing(io, APR_SIZE_MAX);
    want = input_buffered(io->req);
    if (io->remaining > 0 && !io->req->input_eos)
        want = (apr_uint64_t)io->remaining < (apr_uint64_t)(APR_SIZE_MAX - want)
                   ? want + (apr_size_t)io->remaining
                   : APR_SIZE_MAX;
    if (size >= 0 && (io->remaining >= 0 ? (apr_size_t)size < want : 1))
        want = (apr_size_t)size;
    /* An unknown-length body read in sized pieces: a piece at a time. */
    if (io->remaining < 0 && want > INPUT_PREALLOC && size >= 0)
        want = INPUT_PREALLOC;
    if (want > INPUT_PREALLOC)
        return input_read_growing(io, want);
    return input_read_sized(io, want);
}

/* Makes room for at least `more` bytes after the buffered data. */
static int input_reserve(pyh_request *req, apr_size_t more)
{
    apr_size_t have = input_buffered(req);
    char *grown;
    if (req->ibuf_pos && req->ibuf_cap - req->ibuf_len < more) {
        memmove(req->ibuf, req->ibuf + req->ibuf_pos, have);
        req->ibuf_pos = 0;
        req->ibuf_len = have;
    }
    if (req->ibuf_cap - req->ibuf_len >= more)
        return 0;
    if (!(grown = PyMem_Realloc(req->ibuf, req->ibuf_len + more))) {
        PyErr_NoMemory();
        return -1;
    }
    req->ibuf = grown;
    req->ibuf_cap = req->ibuf_len + more;
    return 0;
}

static PyObject *input_readline_impl(input_object *io, Py_ssize_t size)
{
    pyh_request *req = io->req;
    apr_size_t scanned = 0, n, got;
    PyObject *line;

    for (;;) {
        apr_size_t have = input_buffered(req);
        const char *start = input_head(req);
        const char *nl;
        apr_size_t limit = size >= 0 && (apr_size_t)size < have ? (apr_size_t)size
                                                                : have;
        nl = limit > scanned ? memchr(start + scanned, '\n', limit - scanned)
                             : NULL;
        if (nl) {
            n = nl - start + 1;
            break;
        }
        if ((size >= 0 && have >= (apr_size_t)size) || req->input_eos) {
            n = limit;
            break;
        }
        scanned = have;
        if (input_reserve(req, INPUT_LINE_CHUNK) < 0)
            return NULL;
        if (input_pull(io, req->ibuf + req->ibuf_len,
                       req->ibuf_cap - req->ibuf_len, 1, &got) < 0)
            return NULL;
        req->ibuf_len += got;
    }
    line = PyBytes_FromStringAndSize(input_head(req), n);
    if (line)
        req->ibuf_pos += n;
    return line;
}

static PyObject *input_readline(PyObject *self, PyObject *const *args,
                                Py_ssize_t nargs)
{
    input_object *io = (input_object *)self;
    Py_ssize_t size;
    if (input_check(io) < 0 || input_size_arg(nargs, args, &size) < 0)
        return NULL;
    return input_readline_impl(io, size);
}

static PyObject *input_readlines(PyObject *self, PyObject *const *args,
                                 Py_ssize_t nargs)
{
    input_object *io = (input_object *)self;
    Py_ssize_t hint, total = 0;
    PyObject *lines, *line;

    if (input_check(io) < 0 || input_size_arg(nargs, args, &hint) < 0)
        return NULL;
    if (!(lines = PyList_New(0)))
        return NULL;
    while ((line = input_readline_impl(io, -1))) {
        Py_ssize_t n = PyBytes_GET_SIZE(line);
        if (n == 0 || PyList_Append(lines, line) < 0) {
            Py_DECREF(line);
            break;
        }
        Py_DECREF(line);
        total += n;
        if (hint > 0 && total >= hint)
            break;
    }
    if (PyErr_Occurred()) {
        Py_DECREF(lines);
        return NULL;
    }
    return lines;
}

static PyObject *input_iternext(PyObject *self)
{
    input_object *io = (input_object *)self;
    PyObject *line;
    if (input_check(io) < 0)
        return NULL;
    line = input_readline_impl(io, -1);
    if (line && PyBytes_GET_SIZE(line) == 0) {
        Py_DECREF(line);
        return NULL; /* StopIteration */
    }
    return line;
}

static PyObject *input_iter(PyObject *self)
{
    return Py_NewRef(self);
}

static PyObject *input_close(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    Py_RETURN_NONE;
}

static void input_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef input_methods[] = {
    {"read", (PyCFunction)(void (*)(void))input_read, METH_FASTCALL,
     "read([size]): up to size bytes of the body, or all of it"},
    {"readline", (PyCFunction)(void (*)(void))input_readline, METH_FASTCALL,
     "readline([size]): the next line, including its newline"},
    {"readlines", (PyCFunction)(void (*)(void))input_readlines, METH_FASTCALL,
     "readlines([hint]): a list of the remaining lines"},
    {"close", input_close, METH_NOARGS, "does nothing; Apache owns the body"},
    {NULL, NULL, 0, NULL}
};

static PyType_Slot input_slots[] = {
    {Py_tp_dealloc, input_dealloc},
    {Py_tp_methods, input_methods},
    {Py_tp_iter, input_iter},
    {Py_tp_iternext, input_iternext},
    {Py_tp_doc, "wsgi.input: the request body, read through Apache."},
    {0, NULL}
};

static PyType_Spec input_spec = {
    "pyhost.Input", sizeof(input_object), 0, Py_TPFLAGS_DEFAULT, input_slots
};

int pyh_input_init_type(pyh_interp *in)
{
    in->input_type = (PyTypeObject *)PyType_FromSpec(&input_spec);
    return in->input_type ? 0 : -1;
}

void pyh_input_attach(PyObject *input, pyh_request *req)
{
    input_object *io = (input_object *)input;
    const char *cl;
    io->req = req;
    io->remaining = -1;
    cl = apr_table_get(req->r->headers_in, "Content-Length");
    if (!apr_table_get(req->r->headers_in, "Transfer-Encoding")) {
        char *end;
        apr_off_t n = 0;
        if (!cl)
            io->remaining = 0;
        else if (apr_strtoff(&n, cl, &end, 10) == APR_SUCCESS && !*end && n >= 0)
            io->remaining = n;
    }
}

PyObject *pyh_input_new(pyh_interp *in)
{
    input_object *io = PyObject_New(input_object, in->input_type);
    if (!io)
        return NULL;
    io->req = NULL;
    io->remaining = 0;
    return (PyObject *)io;
}

void pyh_input_detach(PyObject *input)
{
    input_object *io = (input_object *)input;
    if (io->req) {
        PyMem_Free(io->req->ibuf);
        io->req->ibuf = NULL;
        io->req->ibuf_cap = io->req->ibuf_len = io->req->ibuf_pos = 0;
    }
    io->req = NULL;
}

int pyh_input_answered(pyh_request *req)
{
    if (req->input_status != AP_FILTER_ERROR)
        return 0;
    apr_brigade_cleanup(req->obb);
    req->client_gone = 1;
    return 1;
}
