/* fuzz_input.c - libFuzzer target: wsgi.input (module/input.c, compiled
 * unchanged next to this file) reading a request body that arrives in
 * arbitrary pieces, through arbitrary sequences of read(n), read(),
 * readline(n), readline(), readlines(hint) and iteration.
 *
 * pyhost parses no transfer coding itself: Apache's HTTP_IN filter
 * dechunks and applies Content-Length, and input.c gets plain body bytes
 * from ap_get_brigade. What input.c does parse is the body's split into
 * what the app asked for: the read-ahead buffer, line splitting over
 * piece boundaries, sized reads against Content-Length. So the one httpd
 * function it calls, ap_get_brigade, is replaced here by a filter that
 * hands over the input's pieces as Apache would (never more than asked,
 * in several buckets, some empty, data and EOS sometimes in one
 * brigade), and everything the app gets back is checked against what was
 * handed over.
 *
 * Input layout (see make_corpus.py):
 *   byte 0      framing: 0 Content-Length exact, 1 chunked (no length),
 *               2 Content-Length from bytes 2..9 (any claim), 3 no body
 *   byte 1      number of operations, 1..16
 *   [2..9]      the claim, framing 2 only (int64, host order)
 *   3 bytes     per operation: op % 6, u16 argument (0xffff: no argument,
 *               0xfffe: 1 << 40)
 *   the rest    the body as pieces: a length byte k and k bytes; k == 0
 *               is the end of the body, k == 255 a failed read (the client
 *               went away).
 * Python runs with the malloc allocator so ASan sees every buffer. */
#include "pyhost.h"

#include "http_protocol.h"
#include "apr_buckets.h"
#include "apr_strings.h"

#include <stdio.h>
#include <stdlib.h>

/* input.c's log calls (through APLOG_USE_MODULE) need the record. */
module AP_MODULE_DECLARE_DATA pyhost_module;

enum { OP_READ_ALL, OP_READ, OP_READLINE_ALL, OP_READLINE, OP_READLINES, OP_NEXT };

/* The body as the fake HTTP_IN filter hands it over. */
static struct {
    const uint8_t *p;
    size_t len, pos;
    size_t piece;          /* bytes left of the current piece */
    int eos, failed;
    char *given;           /* every byte handed over, in order */
    size_t given_len;
} body;

static pyh_interp interp;
static apr_pool_t *root;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_input: %s\n", what);
    abort();
}

/* ---- the httpd functions input.c calls ------------------------------------ */

static int body_ends_here(void)
{
    return body.pos >= body.len || body.p[body.pos] == 0;
}

apr_status_t ap_get_brigade(ap_filter_t *f, apr_bucket_brigade *bb,
                            ap_input_mode_t mode, apr_read_type_e block,
                            apr_off_t readbytes)
{
    apr_bucket_alloc_t *ba = bb->bucket_alloc;
    size_t n, half;
    (void)f;
    if (mode != AP_MODE_READBYTES || block != APR_BLOCK_READ)
        fail("input.c asked for something other than a blocking READBYTES");
    if (readbytes <= 0)
        fail("input.c asked for no bytes");
    if (body.failed)
        return APR_ECONNRESET;
    if (!body.piece && !body.eos) {
        if (body_ends_here()) {
            body.eos = 1;
        }
        else if (body.p[body.pos] == 255) {
            body.failed = 1;
            return APR_ECONNRESET;
        }
        else {
            body.piece = body.p[body.pos++];
            if (body.piece > body.len - body.pos)
                body.piece = body.len - body.pos;
        }
    }
    if (body.eos) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(ba));
        return APR_SUCCESS;
    }
    n = body.piece < (size_t)readbytes ? body.piece : (size_t)readbytes;
    /* Filters may pass an empty bucket, whose data may be NULL. */
    if (body.pos % 3 == 0)
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_immortal_create(NULL, 0, ba));
    /* Two buckets, as a filter chain may well give. */
    half = n / 2;
    if (half)
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_heap_create(
                                        (const char *)body.p + body.pos, half,
                                        NULL, ba));
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_heap_create(
                                    (const char *)body.p + body.pos + half,
                                    n - half, NULL, ba));
    memcpy(body.given + body.given_len, body.p + body.pos, n);
    body.given_len += n;
    body.pos += n;
    body.piece -= n;
    /* HTTP_IN sends EOS along with the last bytes. */
    if (!body.piece && body_ends_here()) {
        body.eos = 1;
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(ba));
    }
    return APR_SUCCESS;
}

int ap_map_http_request_error(apr_status_t rv, int status)
{
    (void)rv;
    return status;
}

/* Not called by input.c today; here so that a log line or a body limit
 * added to it does not break this build. */
void ap_log_rerror_(const char *file, int line, int module_index, int level,
                    apr_status_t status, const request_rec *r,
                    const char *fmt, ...)
{
    (void)file, (void)line, (void)module_index, (void)level, (void)status;
    (void)r, (void)fmt;
}

apr_off_t ap_get_limit_req_body(const request_rec *r)
{
    (void)r;
    return 0; /* no LimitRequestBody */
}

/* ---- the harness ----------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    PyPreConfig pre;
    PyConfig config;
    PyStatus st;
    (void)argc;
    (void)argv;
    if (apr_initialize() != APR_SUCCESS || apr_pool_create(&root, NULL) != APR_SUCCESS)
        fail("APR did not start");
    PyPreConfig_InitIsolatedConfig(&pre);
    pre.allocator = PYMEM_ALLOCATOR_MALLOC;
    st = Py_PreInitialize(&pre);
    if (PyStatus_Exception(st))
        fail("Python did not pre-initialize");
    PyConfig_InitIsolatedConfig(&config);
    config.site_import = 0;
    config.install_signal_handlers = 0;
    st = PyConfig_SetBytesString(&config, &config.home, PYH_PYTHON_HOME);
    if (!PyStatus_Exception(st))
        st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st))
        fail("Python did not start");
    if (pyh_input_init_type(&interp) < 0)
        fail("no input type");
    return 0;
}

/* Until a read raises, the bytes the app got so far must be exactly the
 * start of the body. A raising read may drop what it had read (readlines
 * that fails after some lines, as Python's own io does), so after that
 * only the total is checked. */
static int in_step;

static void got_bytes(PyObject *b, size_t *out_len)
{
    Py_ssize_t n;
    if (!PyBytes_Check(b))
        fail("a read returned something other than bytes");
    n = PyBytes_GET_SIZE(b);
    if (*out_len + (size_t)n > body.given_len)
        fail("the app got more bytes than the client sent");
    if (in_step && memcmp(PyBytes_AS_STRING(b), body.given + *out_len, (size_t)n))
        fail("the app got bytes other than the client's, or out of order");
    *out_len += (size_t)n;
}

/* A line: a newline only at its end, at most `size` bytes. */
static void check_line(PyObject *line, Py_ssize_t size)
{
    const char *s = PyBytes_AS_STRING(line), *nl;
    Py_ssize_t n = PyBytes_GET_SIZE(line);
    if (size >= 0 && n > size)
        fail("readline(size) returned more than size bytes");
    nl = n ? memchr(s, '\n', (size_t)n) : NULL;
    if (nl && nl != s + n - 1)
        fail("a line has a newline before its end");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    request_rec *r;
    conn_rec *c;
    ap_filter_t filter;
    pyh_request req;
    PyObject *io, *res;
    const uint8_t *ops;
    size_t nops, i, total = 0, got_len = 0, scan;
    int framing, complete = 1, trace;

    if (size < 2)
        return 0;
    trace = getenv("FUZZ_TRACE") != NULL;
    framing = data[0] % 4;
    nops = data[1] % 16 + 1;
    ops = data + 2 + (framing == 2 ? 8 : 0);
    if ((size_t)(ops - data) + 3 * nops > size)
        return 0;
    memset(&body, 0, sizeof(body));
    body.p = ops + 3 * nops;
    body.len = framing == 3 ? 0 : size - (size_t)(body.p - data);
    /* What a client finishing its body sends in all. */
    for (scan = 0; scan < body.len && body.p[scan] != 0; ) {
        size_t k = body.p[scan++];
        if (k == 255) {
            complete = 0;
            break;
        }
        if (k > body.len - scan)
            k = body.len - scan;
        total += k;
        scan += k;
    }

    apr_pool_create(&p, root);
    body.given = apr_palloc(p, body.len + 1);
    c = apr_pcalloc(p, sizeof(*c));
    c->pool = p;
    c->bucket_alloc = apr_bucket_alloc_create(p);
    r = apr_pcalloc(p, sizeof(*r));
    r->pool = p;
    r->connection = c;
    r->headers_in = apr_table_make(p, 2);
    /* log level 0: a log call input.c may make stays in the level check */
    r->log = apr_pcalloc(p, sizeof(*r->log));
    memset(&filter, 0, sizeof(filter));
    r->input_filters = &filter;
    if (framing == 0)
        apr_table_setn(r->headers_in, "Content-Length",
                       apr_psprintf(p, "%" APR_SIZE_T_FMT, total));
    else if (framing == 1)
        apr_table_setn(r->headers_in, "Transfer-Encoding", "chunked");
    else if (framing == 2) {
        int64_t claim;
        memcpy(&claim, data + 2, 8);
        apr_table_setn(r->headers_in, "Content-Length",
                       apr_psprintf(p, "%" APR_INT64_T_FMT, claim));
    }
    memset(&req, 0, sizeof(req));
    req.r = r;

    if (!(io = pyh_input_new(&interp)))
        fail("no input object");
    pyh_input_attach(io, &req);
    in_step = 1;
    for (i = 0; i < nops; i++) {
        int op = ops[3 * i] % 6;
        unsigned arg = ops[3 * i + 1] | (unsigned)ops[3 * i + 2] << 8;
        Py_ssize_t size_arg = arg == 0xffff ? -1
                              : arg == 0xfffe ? (Py_ssize_t)1 << 40
                                              : (Py_ssize_t)arg;
        switch (op) {
        case OP_READ_ALL:
            res = PyObject_CallMethod(io, "read", NULL);
            if (res) {
                got_bytes(res, &got_len);
                /* A body with a right (or no) length: read() is all of it. */
                if (complete && framing <= 1 && got_len != total)
                    fail("read() did not return the whole body");
            }
            break;
        case OP_READ:
            res = PyObject_CallMethod(io, "read", "n", size_arg);
            if (res) {
                if (size_arg >= 0 && PyBytes_Check(res)
                    && PyBytes_GET_SIZE(res) > size_arg)
                    fail("read(size) returned more than size bytes");
                got_bytes(res, &got_len);
            }
            break;
        case OP_READLINE_ALL:
        case OP_READLINE:
            if (op == OP_READLINE_ALL)
                size_arg = -1;
            res = size_arg < 0 ? PyObject_CallMethod(io, "readline", NULL)
                               : PyObject_CallMethod(io, "readline", "n", size_arg);
            if (res) {
                got_bytes(res, &got_len);
                check_line(res, size_arg);
            }
            break;
        case OP_READLINES:
            res = size_arg < 0 ? PyObject_CallMethod(io, "readlines", NULL)
                               : PyObject_CallMethod(io, "readlines", "n", size_arg);
            if (res) {
                Py_ssize_t j;
                if (!PyList_Check(res))
                    fail("readlines() returned something other than a list");
                for (j = 0; j < PyList_GET_SIZE(res); j++) {
                    PyObject *line = PyList_GET_ITEM(res, j);
                    got_bytes(line, &got_len);
                    check_line(line, -1);
                    if (!PyBytes_GET_SIZE(line))
                        fail("readlines() returned an empty line");
                }
            }
            break;
        default:
            res = PyIter_Next(io);
            if (res) {
                got_bytes(res, &got_len);
                check_line(res, -1);
                if (!PyBytes_GET_SIZE(res))
                    fail("iteration returned an empty line");
            }
            break;
        }
        if (trace) {
            fprintf(stderr, "op %d(%zd) -> ", op, size_arg);
            if (res)
                PyObject_Print(res, stderr, 0);
            fprintf(stderr, " [given %zu, got %zu]\n", body.given_len, got_len);
        }
        if (!res) {
            /* Only a failed client read may raise, as OSError. */
            if (PyErr_Occurred()) {
                if (!PyErr_ExceptionMatches(PyExc_OSError) || !body.failed) {
                    PyErr_Print();
                    fail("a read raised without the client failing");
                }
                PyErr_Clear();
                in_step = 0;
            }
        }
        Py_XDECREF(res);
    }
    pyh_input_detach(io);
    Py_DECREF(io);
    apr_pool_destroy(p);
    return 0;
}
