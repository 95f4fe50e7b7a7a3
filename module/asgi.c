/* asgi.c - ASGI, Apache's side: collects the scope's strings, hands the
 * app to the interpreter's event loop (python/pyhost/_asgi.pyx), then
 * does the request's I/O on the Apache worker thread with the GIL
 * released: body pieces in through the input filters, response out
 * through the output filters, as the loop asks for them (DESIGN rule 8).
 *
 * In a daemon process the same code runs on the daemon thread that took
 * the relay connection: the relay's request_rec (relay.c) turns the output
 * brigades into frames and asks the Apache child for body pieces, so only
 * three edges know about it (req->relay_fd > 0): a disconnect is a hang-up
 * of the relay socket, the scope has no mod_ssl to ask, and an early hint
 * becomes an I frame. The Apache child relays, watching its client. */
#include "pyhost.h"
#include "asgi_api.h"
#include "metrics.h"

#include "ap_mpm.h"
#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"
#include "mod_ssl.h"
#include "apr_atomic.h"
#include "apr_base64.h"
#include "apr_poll.h"
#include "apr_sha1.h"
#include "apr_strings.h"
#include "util_filter.h"
#include "websocket.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define ASGI_READ_CHUNK 65536
/* Lifespan startup at child start and shutdown at its exit wait at most
 * this long (seconds) per app. */
#define ASGI_LIFESPAN_TIMEOUT 30.0
#define ASGI_SHUTDOWN_TIMEOUT 5.0
/* While the app runs without work for the worker, the worker looks at the
 * client's connection this often (ms), so a client that goes away is
 * noticed within a second (issue 13 point 4). */
#define ASGI_GONE_POLL_MS 250

/* The loop of one interpreter (each application group has its own, in
 * each process; DESIGN rule 8). Reached through pyh_interp.asgi_loop and
 * touched only with that interpreter's GIL held, except for the fields the
 * host table's callbacks use (qlock, queue, host). */
typedef struct asgi_loop {
    pyh_asgi_host host;
    const pyh_asgi_bridge *bridge;
    PyObject *loop;            /* _asgi.Loop; NULL until started */
    int failed;                /* starting failed: don't retry per request */
    server_rec *server;        /* for entries that have no request */
    pthread_mutex_t qlock;     /* the completion queue */
    pyh_asgi_xfer *queue;
} asgi_loop;

/* A request's shared record: the xfer first, so the loop's pointer is
 * this one. Freed by whichever side lets go last. */
typedef struct {
    pyh_asgi_xfer x;
    asgi_loop *lp;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned work;             /* posted, not yet taken; under mu */
    int worker_gone;           /* under mu */
    int gone_told;             /* the worker told the loop PYH_ASGI_GONE */
    int timed_out;             /* a daemon's request-timeout passed; under mu */
    apr_uint32_t refs;
    char *rbuf;                /* the worker's read buffer */
    int ws_efd;                /* > 0: a WebSocket worker polls it; under mu */
} asgi_req;

static void asgi_optional_fns(void);

/* ---- the host table: called from the loop thread ------------------------ */

static int asgi_post(pyh_asgi_xfer *x, unsigned work)
{
    asgi_req *a = (asgi_req *)x;
    int rc = 0;
    pthread_mutex_lock(&a->mu);
    if (a->worker_gone)
        rc = -1;
    else
        a->work |= work;
    pthread_cond_signal(&a->cv);
    if (!rc && a->ws_efd > 0) {
        /* A WebSocket worker sleeps in poll(), not on cv. */
        uint64_t one = 1;
        if (write(a->ws_efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            rc = -1;
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

static pyh_asgi_xfer *asgi_take_completed(void *ctx)
{
    asgi_loop *lp = ctx;
    pyh_asgi_xfer *list, *x;
    pthread_mutex_lock(&lp->qlock);
    list = lp->queue;
    lp->queue = NULL;
    /* A worker may queue an xfer again as soon as the lock is released,
     * rewriting `next`: the loop walks `taken_next`, which only this
     * function writes. */
    for (x = list; x; x = x->next) {
        x->taken = x->completed;
        x->completed = 0;
        x->taken_next = x->next;
    }
    pthread_mutex_unlock(&lp->qlock);
    return list;
}

static void asgi_release(pyh_asgi_xfer *x)
{
    asgi_req *a = (asgi_req *)x;
    if (apr_atomic_dec32(&a->refs))
        return;
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    if (a->ws_efd > 0)
        close(a->ws_efd);
    free(a->x.error);
    free(a->rbuf);
    free(a);
}

static void asgi_log(void *ctx, int level, const char *msg)
{
    asgi_loop *lp = ctx;
    pyh_log_text(NULL, lp->server, level, msg);
}

/* The loop's figures go to metrics.c, which keeps them per process. */
static void asgi_loop_lag(void *ctx, long long us)
{
    (void)ctx;
    pyh_metrics_loop_lag(us);
}

static void asgi_lifespan_state(void *ctx, const char *name, int state)
{
    (void)ctx;
    pyh_metrics_lifespan(name, state);
}

/* ---- worker -> loop --------------------------------------------------- */

/* Queues completion bits for the loop and wakes it: one eventfd write
 * unless the xfer is already waiting in the queue. */
static void asgi_complete(asgi_req *a, unsigned bits)
{
    asgi_loop *lp = a->lp;
    uint64_t one = 1;
    int wake;
    pthread_mutex_lock(&lp->qlock);
    wake = !a->x.completed;
    if (wake) {
        a->x.next = lp->queue;
        lp->queue = &a->x;
    }
    a->x.completed |= bits;
    pthread_mutex_unlock(&lp->qlock);
    if (wake && write(lp->host.wake_fd, &one, sizeof(one)) < 0
        && errno != EAGAIN)
        ap_log_error(APLOG_MARK, APLOG_ERR, errno, lp->server,
                     "PYH0210: cannot wake the ASGI event loop");
}

/* ---- starting the loop ------------------------------------------------- */

/* The interpreter's loop, started on first need; GIL held. NULL (logged)
 * when ASGI cannot run here. */
static asgi_loop *asgi_loop_get(pyh_interp *in, server_rec *s)
{
    asgi_loop *lp;
    PyObject *mod;
    PYH_LOCK(&in->lock); /* in->pool's rule */
    if (!(lp = in->asgi_loop)) /* freed at child exit with in->pool */
        lp = in->asgi_loop = apr_pcalloc(in->pool, sizeof(*lp));
    PYH_UNLOCK(&in->lock);
    if (lp->loop)
        return lp;
    if (lp->failed)
        return NULL;
    lp->failed = 1;
    lp->server = s;
    if (in->own_gil) {
        /* Built to share the GIL: with a GIL (and allocator) of its own, an
         * interpreter that served ASGI crashed the process at exit. */
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "PYH0224: application group '%s' has its own GIL (a "
                     "WSGI request created it first, WSGIPerInterpreterGIL "
                     "On), and ASGI runs only in groups that share the GIL; "
                     "its ASGI mounts answer 500: give them another group",
                     in->name);
        return NULL;
    }
    if (!(mod = PyImport_ImportModule("pyhost._asgi"))
        || !(lp->bridge = PyCapsule_Import(PYH_ASGI_CAPSULE, 0))) {
        Py_XDECREF(mod);
        pyh_log_exception(in, NULL, s,
                          "PYH0211: the ASGI bridge (pyhost._asgi) did not "
                          "load; reinstall mod-pyhost");
        return NULL;
    }
    Py_DECREF(mod);
    if (lp->bridge->version != PYH_ASGI_API_VERSION) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     "PYH0211: pyhost._asgi speaks bridge version %d, "
                     "mod_pyhost %d: install them from one pyhost build",
                     lp->bridge->version, PYH_ASGI_API_VERSION);
        return NULL;
    }
    if (pthread_mutex_init(&lp->qlock, NULL))
        return NULL;
    lp->host.version = PYH_ASGI_API_VERSION;
    lp->host.ctx = lp;
    lp->host.post = asgi_post;
    lp->host.take_completed = asgi_take_completed;
    lp->host.release = asgi_release;
    lp->host.log = asgi_log;
    lp->host.loop_lag = asgi_loop_lag;
    lp->host.lifespan_state = asgi_lifespan_state;
    lp->host.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (lp->host.wake_fd < 0) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, errno, s,
                     "PYH0212: cannot make the ASGI loop's eventfd");
        return NULL;
    }
    if (!(lp->loop = lp->bridge->loop_start(&lp->host,
                                            pyh_globals.asgi_event_loop,
                                            in->name))) {
        pyh_log_exception(in, NULL, s,
                          "PYH0212: starting the ASGI event loop");
        close(lp->host.wake_fd);
        return NULL;
    }
    lp->failed = 0;
    return lp;
}

/* The loop starts on first need (or at child_init). A sub-interpreter
 * of a Python whose _asyncio is process-wide (compat.h) is given the
 * pure-Python asyncio, before its app can import asyncio. */
int pyh_asgi_interp_init(pyh_interp *in)
{
    PyObject *modules;
    if (!PYH_ASYNCIO_ACCEL_SHARED || !in->name || !*in->name)
        return 0;
    if (!(modules = PyImport_GetModuleDict())) /* borrowed */
        return -1;
    return PyDict_SetItemString(modules, "_asyncio", Py_None);
}

void pyh_asgi_interp_clear(pyh_interp *in)
{
    asgi_loop *lp = in->asgi_loop;
    if (!lp || !lp->loop)
        return;
    if (lp->bridge->loop_stop(lp->loop, ASGI_SHUTDOWN_TIMEOUT) < 0)
        pyh_log_exception(in, NULL, lp->server,
                          "PYH0213: stopping the ASGI event loop");
    Py_CLEAR(lp->loop);
    pyh_metrics_loop_lag(-1); /* no loop to be late any more */
    /* the loop thread has ended: nobody reads the eventfd any more */
    close(lp->host.wake_fd);
}

int pyh_asgi_lifespan_mode(server_rec *s, const pyh_alias *a)
{
    pyh_server_conf *sc = ap_get_module_config(s->module_config, &pyhost_module);
    if (a->lifespan != PYH_UNSET)
        return a->lifespan;
    return sc->asgi_lifespan != PYH_UNSET ? sc->asgi_lifespan
                                          : PYH_LIFESPAN_AUTO;
}

/* The process group an ASGI mount names statically (process-group=, or
 * WSGIProcessGroup at server level); NULL: embedded. */
static const char *asgi_mount_group(server_rec *v, const pyh_alias *a)
{
    const pyh_dir_conf *sd =
        ap_get_module_config(v->lookup_defaults, &pyhost_module);
    const char *g = a->options.process_group ? a->options.process_group
                                             : sd->process_group;
    return g && *g && strcmp(g, "%{GLOBAL}") ? g : NULL;
}

/* The application group an ASGI mount runs in when that is known
 * without a request: "" for the main interpreter, a name, or NULL when it
 * depends on the request (%{SERVER}, %{RESOURCE}, %{ENV:...}), in which
 * case the interpreter and its lifespan start at its first request. */
static const char *asgi_static_group(server_rec *s, const pyh_alias *a)
{
    const pyh_dir_conf *sd =
        ap_get_module_config(s->lookup_defaults, &pyhost_module);
    const char *g = a->options.application_group ? a->options.application_group
                                                 : sd->application_group;
    if (!g || !strcmp(g, "%{GLOBAL}"))
        return "";
    if (!strcmp(g, "%{SERVER}") || !strcmp(g, "%{RESOURCE}")
        || !strncmp(g, "%{ENV:", 6))
        return NULL;
    return g;
}

/* Lifespan startup for each ASGI mount whose app and interpreter are
 * known before any request (a fixed script in a fixed application group)
 * and that runs here (group NULL: embedded; else in that daemon group), so
 * that the first request does not pay for it: as WSGIImportScript does,
 * this creates a named group's sub-interpreter at process start. A mount
 * placed by WSGIProcessGroup in a <Directory> (or an %{ENV:} group) starts
 * its lifespan on first use. */
static void asgi_lifespan_at_start(apr_pool_t *pchild, server_rec *s,
                                   const char *group)
{
    server_rec *v;
    int i;
    if (!pyh_python_ready())
        return;
    for (v = s; v; v = v->next) {
        pyh_server_conf *sc =
            ap_get_module_config(v->module_config, &pyhost_module);
        for (i = 0; i < sc->aliases->nelts; i++) {
            const pyh_alias *a = &APR_ARRAY_IDX(sc->aliases, i, pyh_alias);
            const char *agroup = asgi_static_group(v, a);
            int mode = pyh_asgi_lifespan_mode(v, a), status;
            const char *pg;
            pyh_interp *in;
            asgi_loop *lp;
            PyObject *app;
            if (a->protocol != PYH_PROTO_ASGI || a->regexp
                || mode == PYH_LIFESPAN_OFF || !agroup)
                continue;
            pg = asgi_mount_group(v, a);
            if (group ? !pg || strcmp(pg, group) : pg != NULL)
                continue;
            if (!(in = pyh_interp_acquire_for(agroup, v, 1)))
                continue; /* logged (PYH0007); its requests get 500 */
            lp = asgi_loop_get(in, v);
            app = lp ? pyh_script_callable(in, NULL, a->script,
                                           a->options.callable_object, 1,
                                           &status)
                     : NULL;
            if (app) {
                if (lp->bridge->lifespan_startup(lp->loop, app, mode,
                                                 a->script,
                                                 ASGI_LIFESPAN_TIMEOUT) < 0)
                    pyh_log_exception(in, NULL, v,
                                      apr_psprintf(pchild,
                                                   "PYH0205: lifespan startup "
                                                   "of '%s'",
                                                   a->script));
                Py_DECREF(app);
            }
            pyh_interp_release(in);
        }
    }
}

void pyh_asgi_child_init(apr_pool_t *pchild, server_rec *s)
{
    asgi_optional_fns();
    asgi_lifespan_at_start(pchild, s, NULL);
}

void pyh_asgi_daemon_init(apr_pool_t *pchild, server_rec *s,
                          const pyh_daemon *d)
{
    /* no mod_ssl here: the tls extension is the Apache child's to give */
    asgi_lifespan_at_start(pchild, s, d->name);
}

/* ---- the request's scope ------------------------------------------------ */

static int asgi_collect_header(void *data, const char *key, const char *val)
{
    apr_array_header_t *arr = data;
    pyh_asgi_header *h = apr_array_push(arr);
    char *name = apr_pstrdup(arr->pool, key), *c;
    for (c = name; *c; c++)
        *c = apr_tolower(*c);
    h->name = name;
    h->name_len = (size_t)(c - name);
    h->value = val;
    h->value_len = strlen(val);
    return 1;
}

/* The path as the client sent it (r->uri and r->parsed_uri.path are
 * decoded in place): the request target up to '?', without the scheme
 * and authority of an absolute-form target. */
static const char *asgi_raw_path(request_rec *r)
{
    const char *u = r->unparsed_uri ? r->unparsed_uri : r->uri;
    const char *q;
    if (*u != '/') {
        const char *sep = strstr(u, "://");
        if (sep && (sep = strchr(sep + 3, '/')))
            u = sep;
        else
            return r->uri;
    }
    q = strchr(u, '?');
    return q ? apr_pstrmemdup(r->pool, u, (apr_size_t)(q - u)) : u;
}

/* ---- the "tls" extension: mod_ssl's view of the connection --------------- */

static APR_OPTIONAL_FN_TYPE(ssl_is_https) *asgi_ssl_is_https;
static APR_OPTIONAL_FN_TYPE(ssl_var_lookup) *asgi_ssl_var;

/* Takes mod_ssl's optional functions (absent without mod_ssl); at child
 * start, before any request. */
static void asgi_optional_fns(void)
{
    asgi_ssl_is_https = APR_RETRIEVE_OPTIONAL_FN(ssl_is_https);
    asgi_ssl_var = APR_RETRIEVE_OPTIONAL_FN(ssl_var_lookup);
}

static const char *asgi_ssl_lookup(request_rec *r, const char *name)
{
    const char *v = asgi_ssl_var(r->pool, r->server, r->connection, r,
                                 (char *)name);
    return v && *v ? v : NULL;
}

/* An HTTP/1 connection mod_ssl serves (an HTTP/2 stream's secondary
 * connection is not asked: the extension is not listed there). */
static void asgi_scope_tls(request_rec *r, pyh_asgi_scope_in *sc)
{
    conn_rec *c = r->connection;
    if (!asgi_ssl_is_https || !asgi_ssl_var || c->master
        || !asgi_ssl_is_https(c))
        return;
    sc->tls = 1;
    sc->tls_protocol = asgi_ssl_lookup(r, "SSL_PROTOCOL");
    sc->tls_cipher = asgi_ssl_lookup(r, "SSL_CIPHER");
    sc->tls_server_cert = asgi_ssl_lookup(r, "SSL_SERVER_CERT");
    sc->tls_client_cert = asgi_ssl_lookup(r, "SSL_CLIENT_CERT");
    sc->tls_client_verify = asgi_ssl_lookup(r, "SSL_CLIENT_VERIFY");
    sc->tls_client_dn = asgi_ssl_lookup(r, "SSL_CLIENT_S_DN");
}

/* WSGITrustedProxyHeaders, as for WSGI: pyh_compat_proxy_view decides,
 * and has already put X-Forwarded-Host in Host and dropped the untrusted
 * headers from r->headers_in. Embedded only: a daemon's scope comes from
 * the CGI variables the Apache child applied them to (environ.c).
 * Before sc->headers are collected. */
static void asgi_scope_proxy(pyh_request *req, pyh_asgi_scope_in *sc)
{
    pyh_proxy_view pv;
    if (!pyh_compat_proxy_view(req->r, &req->conf, &pv))
        return;
    if (pv.client)
        sc->client_host = pv.client; /* the port stays, as REMOTE_PORT */
    if (pv.scheme)
        sc->scheme = pv.scheme; /* ws/wss for a WebSocket in _asgi.pyx */
    if (pv.server_host)
        sc->server_host = pv.server_host;
    if (pv.server_port)
        sc->server_port = pv.server_port;
}

static void asgi_scope_in(pyh_request *req, pyh_asgi_scope_in *sc)
{
    request_rec *r = req->r;
    conn_rec *c = r->connection;
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    const char *raw = asgi_raw_path(r);
    apr_array_header_t *hdrs;

    memset(sc, 0, sizeof(*sc));
    sc->method = r->method;
    sc->http_version = r->proto_num >= 2000   ? "2"
                       : r->proto_num >= 1001 ? "1.1"
                                              : "1.0";
    /* In a daemon, the request_rec is the relay's: no connection for
     * mod_ssl to look at. */
    sc->scheme = req->relay_fd > 0 ? (req->vars[PYH_K_REQUEST_SCHEME]
                                          ? req->vars[PYH_K_REQUEST_SCHEME]
                                          : "http")
                                   : ap_http_scheme(r);
    sc->path = r->uri;
    sc->path_len = strlen(r->uri);
    sc->raw_path = raw;
    sc->raw_path_len = strlen(raw);
    sc->query = r->args ? r->args : "";
    sc->query_len = strlen(sc->query);
    sc->root_path = req->script_name;
    sc->root_path_len = strlen(req->script_name);
    sc->client_host = r->useragent_ip;
    sc->client_port = r->useragent_addr ? r->useragent_addr->port
                                        : c->client_addr->port;
    sc->server_host = c->local_ip;
    sc->server_port = c->local_addr->port;
    asgi_scope_proxy(req, sc); /* may replace r->headers_in */
    hdrs = apr_array_make(r->pool, apr_table_elts(r->headers_in)->nelts,
                          sizeof(pyh_asgi_header));
    apr_table_do(asgi_collect_header, hdrs, r->headers_in, NULL);
    sc->headers = (const pyh_asgi_header *)hdrs->elts;
    sc->nheaders = hdrs->nelts;
    sc->has_body = apr_table_get(r->headers_in, "Transfer-Encoding")
                   || (cl && strcmp(cl, "0"));
    if (req->relay_fd <= 0)
        asgi_scope_tls(r, sc);
}

/* ---- the worker's side of the request ----------------------------------- */

static int asgi_is_hop_by_hop(const char *name)
{
    static const char *const hop[] = {
        "connection", "keep-alive", "proxy-authenticate",
        "proxy-authorization", "te", "trailer", "transfer-encoding",
        "upgrade", NULL
    };
    int i;
    for (i = 0; hop[i]; i++)
        if (!strcasecmp(name, hop[i]))
            return 1;
    return 0;
}

/* The app's status and headers into r. The strings are copied: the
 * loop lets go of its bytes once the send completes. */
static void asgi_commit_headers(pyh_request *req, const pyh_asgi_xfer *x)
{
    request_rec *r = req->r;
    int i;
    r->status = x->status;
    r->status_line = ap_get_status_line(x->status);
    if (atoi(r->status_line) != x->status)
        r->status_line = apr_psprintf(r->pool, "%03d ", x->status);
    for (i = 0; i < x->nheaders; i++) {
        const pyh_asgi_header *h = &x->headers[i];
        char *name = apr_pstrmemdup(r->pool, h->name, h->name_len);
        char *value = apr_pstrmemdup(r->pool, h->value, h->value_len);
        if (!strcasecmp(name, "content-type")) {
            ap_set_content_type(r, value);
        }
        else if (!strcasecmp(name, "content-length")) {
            /* digits only: _asgi.pyx checked */
            apr_strtoff(&req->content_length, value, NULL, 10);
            ap_set_content_length(r, req->content_length);
        }
        else if (asgi_is_hop_by_hop(name)) {
            /* Apache owns the connection; honour only a request to close */
            if (!strcasecmp(name, "connection")
                && ap_find_token(r->pool, value, "close"))
                r->connection->keepalive = AP_CONN_CLOSE;
        }
        else {
            apr_table_addn(r->headers_out, name, value);
        }
    }
    req->headers_sent = 1;
}

/* 0: passed; 1: the client is gone or the filters failed. */
static int asgi_pass(pyh_request *req)
{
    request_rec *r = req->r;
    apr_status_t rv;
    if (pyh_input_answered(req))
        return 1;
    rv = ap_pass_brigade(r->output_filters, req->obb);
    apr_brigade_cleanup(req->obb);
    req->passed = 1;
    if (rv != APR_SUCCESS || r->connection->aborted) {
        req->client_gone = 1;
        return 1;
    }
    return 0;
}

/* Cuts a response whose headers are out: an incomplete body and a closed
 * connection, never a fake success. */
static void asgi_abort_response(pyh_request *req)
{
    request_rec *r = req->r;
    apr_bucket_alloc_t *ba = r->connection->bucket_alloc;
    apr_brigade_cleanup(req->obb);
    r->connection->keepalive = AP_CONN_CLOSE;
    APR_BRIGADE_INSERT_TAIL(req->obb, ap_bucket_error_create(HTTP_BAD_GATEWAY,
                                                            NULL, r->pool, ba));
    APR_BRIGADE_INSERT_TAIL(req->obb, apr_bucket_eos_create(ba));
    asgi_pass(req);
}

/* Drops what the app set before anything reached the filters, so that
 * Apache sends its own error page; returns that page's status. */
static int asgi_unsent_error(pyh_request *req)
{
    request_rec *r = req->r;
    apr_brigade_cleanup(req->obb);
    r->status = HTTP_OK;
    r->status_line = NULL;
    r->content_type = NULL;
    apr_table_clear(r->headers_out);
    return req->input_status ? req->input_status : HTTP_INTERNAL_SERVER_ERROR;
}

/* ---- http.response.pathsend / zerocopysend: the body is a file ---------- */

/* The file of a SEND as a file bucket the request owns (pathsend: opened
 * here; zerocopysend: the app's descriptor dup'ed, so the app may close
 * its file as soon as send() returns), and how much of it to send. A
 * failure is logged (PYH0280) and returns non-zero. */
static int asgi_file_bucket(pyh_request *req, const pyh_asgi_xfer *x,
                            apr_file_t **f, apr_off_t *off, apr_off_t *len)
{
    request_rec *r = req->r;
    core_dir_config *core = ap_get_core_module_config(r->per_dir_config);
    apr_int32_t flags = APR_FOPEN_READ;
    apr_finfo_t fi;
    apr_status_t rv;
    const char *what = x->file_kind == 1 ? "pathsend" : "zerocopysend";

    if (core && core->enable_sendfile == ENABLE_SENDFILE_ON)
        flags |= APR_FOPEN_SENDFILE_ENABLED;
    if (x->file_kind == 1)
        rv = apr_file_open(f, x->file_path, flags, APR_OS_DEFAULT, r->pool);
    else
        rv = pyh_own_file(r, (apr_os_file_t)x->file_fd, flags, f);
    if (rv == APR_SUCCESS)
        rv = apr_file_info_get(&fi, APR_FINFO_SIZE | APR_FINFO_TYPE, *f);
    if (rv == APR_SUCCESS && fi.filetype != APR_REG)
        rv = APR_EBADF;
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      "PYH0280: ASGI http.response.%s of %s cannot be sent "
                      "(not a readable regular file)", what,
                      x->file_kind == 1 ? ap_escape_logitem(r->pool, x->file_path)
                                        : "the app's file");
        return 1;
    }
    *off = x->file_offset > 0 ? (apr_off_t)x->file_offset : 0;
    *len = fi.size > *off ? fi.size - *off : 0;
    if (x->file_count >= 0 && (apr_off_t)x->file_count < *len)
        *len = (apr_off_t)x->file_count;
    return 0;
}

/* ---- http.response.early_hint: a 103 -------------------------------------- */

/* Sends the hint's Link headers as a 103 interim response (HTTP/1.1, and
 * HTTP/2 through mod_http2), before anything of the response went out;
 * the app's response status and headers are left as they were. */
static void asgi_early_hint(pyh_request *req, const pyh_asgi_xfer *x)
{
    request_rec *r = req->r;
    int status = r->status;
    apr_table_t *out = r->headers_out;
    int i;
    if (req->passed || r->proto_num < HTTP_VERSION(1, 1))
        return;
    if (req->relay_fd > 0) {
        /* a daemon: the Apache child sends the 103 (an I frame) */
        apr_table_t *hint = apr_table_make(r->pool, x->nheaders);
        for (i = 0; i < x->nheaders; i++)
            apr_table_addn(hint,
                           apr_pstrmemdup(r->pool, x->headers[i].name,
                                          x->headers[i].name_len),
                           apr_pstrmemdup(r->pool, x->headers[i].value,
                                          x->headers[i].value_len));
        pyh_relay_interim(r, hint);
        return;
    }
    r->status = 103;
    r->headers_out = apr_table_make(r->pool, x->nheaders);
    for (i = 0; i < x->nheaders; i++)
        apr_table_addn(r->headers_out,
                       apr_pstrmemdup(r->pool, x->headers[i].name,
                                      x->headers[i].name_len),
                       apr_pstrmemdup(r->pool, x->headers[i].value,
                                      x->headers[i].value_len));
    ap_send_interim_response(r, 1);
    r->status = status;
    r->headers_out = out;
}

/* One SEND. Returns 0 to keep serving, 1 when the response is complete
 * or cannot go on (the worker leaves, answering *status). */
static int asgi_write(asgi_req *a, pyh_request *req, int *status)
{
    request_rec *r = req->r;
    apr_bucket_alloc_t *ba = r->connection->bucket_alloc;
    apr_size_t len = a->x.body_len;

    a->x.send_failed = 0;
    if (a->x.early_hint) {
        asgi_early_hint(req, &a->x);
        return 0;
    }
    if (a->x.status > 0)
        asgi_commit_headers(req, &a->x);
    if (a->x.file_kind) {
        apr_file_t *f;
        apr_off_t off, flen;
        if (asgi_file_bucket(req, &a->x, &f, &off, &flen)) {
            a->x.send_failed = 1; /* send() raises: the response is over */
            if (req->passed)
                asgi_abort_response(req);
            else
                *status = asgi_unsent_error(req);
            return 1;
        }
        /* the whole body is this file: Apache can say how long it is */
        if (req->content_length < 0 && !a->x.more_body && !req->passed
            && !req->body_sent) {
            req->content_length = flen;
            ap_set_content_length(r, flen);
        }
        if (req->content_length >= 0
            && flen > req->content_length - req->body_sent)
            flen = req->content_length - req->body_sent;
        if (flen)
            apr_brigade_insert_file(req->obb, f, off, flen, r->pool);
        req->body_sent += flen;
        len = 0;
    }
    if (req->content_length >= 0
        && (apr_off_t)len > req->content_length - req->body_sent)
        len = (apr_size_t)(req->content_length - req->body_sent);
    if (len) {
        APR_BRIGADE_INSERT_TAIL(req->obb,
                                apr_bucket_transient_create(a->x.body, len, ba));
        req->body_sent += len;
    }
    if (a->x.more_body) {
        APR_BRIGADE_INSERT_TAIL(req->obb, apr_bucket_flush_create(ba));
        if (asgi_pass(req)) {
            a->x.send_failed = 1;
            return 1;
        }
        return 0;
    }
    if (req->content_length >= 0 && req->body_sent < req->content_length
        && !r->header_only) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PYH0202: ASGI app ended its body after %" APR_OFF_T_FMT
                      " bytes but its Content-Length header says "
                      "%" APR_OFF_T_FMT "; response cut",
                      req->body_sent, req->content_length);
        if (req->passed)
            asgi_abort_response(req);
        else
            *status = asgi_unsent_error(req);
        return 1;
    }
    APR_BRIGADE_INSERT_TAIL(req->obb, apr_bucket_eos_create(ba));
    if (asgi_pass(req))
        a->x.send_failed = 1;
    return 1;
}

static void asgi_read(asgi_req *a, pyh_request *req)
{
    apr_size_t got = 0;
    apr_status_t rv;
    a->x.read_failed = 0;
    a->x.read_len = 0;
    if (!a->rbuf && !(a->rbuf = malloc(ASGI_READ_CHUNK))) {
        a->x.read_failed = 1;
        return;
    }
    rv = pyh_input_fill(req, a->rbuf, ASGI_READ_CHUNK, &got);
    if (rv != APR_SUCCESS) {
        a->x.read_failed = 1;
        a->x.read_eos = 1;
        if (!req->input_status)
            req->input_status = ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
        return;
    }
    a->x.rbuf = a->rbuf;
    a->x.read_len = got;
    a->x.read_eos = req->input_eos;
}

/* The app is finished; returns the handler's status. */
static int asgi_done(asgi_req *a, pyh_request *req, int complete)
{
    request_rec *r = req->r;
    if (a->x.done_status > 0 && !req->passed)
        return a->x.done_status;
    if (a->x.error)
        pyh_log_text(r, NULL, APLOG_ERR, a->x.error);
    else if (!complete && !req->client_gone) /* not the app's fault */
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PYH0201: ASGI app returned %s for %s %s",
                      req->passed ? "before its response was complete"
                                  : "without sending a response",
                      r->method, ap_escape_logitem(r->pool, r->uri));
    if (req->passed) {
        asgi_abort_response(req);
        return OK;
    }
    return asgi_unsent_error(req);
}

/* ---- noticing a client that goes away ---------------------------------- */

/* The worker's wait uses the monotonic clock: a clock step must not make
 * it sleep longer than ASGI_GONE_POLL_MS. */
static int asgi_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    int rc;
    if ((rc = pthread_condattr_init(&attr)))
        return rc;
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (!rc)
        rc = pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

/* Has the client closed or reset the connection? No GIL, the worker's own
 * connection. An HTTP/1 connection's socket is polled for a hang-up
 * (POLLRDHUP sees a FIN even behind unread data, such as a TLS
 * close_notify); an HTTP/2 stream has no socket of its own and is gone
 * when mod_http2 marks it aborted (stream reset, connection lost). A
 * client that half-closes its side while waiting for the answer counts as
 * gone, as with uvicorn. */
static int asgi_conn_gone(conn_rec *c)
{
    apr_socket_t *sock;
    apr_os_sock_t fd;
    struct pollfd pfd;
    int n;
    if (c->aborted)
        return 1;
    if (c->master)
        return 0;
    sock = ap_get_conn_socket(c);
    if (!sock || apr_os_sock_get(&fd, sock) != APR_SUCCESS)
        return 0;
    pfd.fd = fd;
    pfd.events = POLLIN | POLLRDHUP;
    pfd.revents = 0;
    n = poll(&pfd, 1, 0);
    if (n <= 0)
        return 0;
    return (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

int pyh_asgi_client_gone(request_rec *r)
{
    return asgi_conn_gone(r->connection);
}

/* In a daemon the client is the Apache child at the other end of the
 * relay connection: it speaks only when asked (a body piece after an R
 * frame), and closes the connection when its own client goes away (or
 * when it dies), so a hang-up there is the disconnect. */
static int asgi_client_gone(pyh_request *req)
{
    struct pollfd pfd;
    if (req->relay_fd <= 0)
        return asgi_conn_gone(req->r->connection);
    pfd.fd = req->relay_fd;
    pfd.events = POLLRDHUP;
    pfd.revents = 0;
    if (poll(&pfd, 1, 0) <= 0)
        return 0;
    return (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

/* Waits for the loop's work (mu held); while there is none, looks at the
 * client every ASGI_GONE_POLL_MS and, the first time it is gone, marks the
 * connection aborted (the output filters then drop what the app still
 * sends) and tells the loop, so that a waiting receive() returns
 * http.disconnect and send() raises. */
static unsigned asgi_wait_work(asgi_req *a, pyh_request *req)
{
    struct timespec until;
    while (!a->work) {
        long ms = ASGI_GONE_POLL_MS;
        if (req->deadline) {
            /* Before the response starts, the Apache child's own wait
             * (request-timeout too) ends first and logs; the second of
             * grace lets its hang-up arrive, so one 504 is logged once. */
            apr_time_t end = req->deadline
                             + (req->passed || a->gone_told
                                    ? 0 : apr_time_from_sec(1));
            apr_interval_time_t left = end - apr_time_now();
            if (left <= 0) {
                a->timed_out = 1;
                return 0;
            }
            if (left < apr_time_from_msec(ms))
                ms = (long)apr_time_as_msec(left) + 1;
        }
        else if (a->gone_told) {
            pthread_cond_wait(&a->cv, &a->mu);
            continue;
        }
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += ms * 1000000L;
        while (until.tv_nsec >= 1000000000L) {
            until.tv_sec += 1;
            until.tv_nsec -= 1000000000L;
        }
        if (pthread_cond_timedwait(&a->cv, &a->mu, &until) != ETIMEDOUT
            || a->work || a->gone_told)
            continue;
        pthread_mutex_unlock(&a->mu);
        if (asgi_client_gone(req)) {
            if (!req->r->connection->master)
                req->r->connection->aborted = 1;
            req->client_gone = 1;
            a->gone_told = 1;
            /* the completion's own reference: the loop may have let go of
             * the request by the time it reads the queue */
            apr_atomic_inc32(&a->refs);
            asgi_complete(a, PYH_ASGI_GONE);
        }
        pthread_mutex_lock(&a->mu);
    }
    return a->work;
}

/* A daemon's ASGI request past request-timeout (only a daemon sets a
 * deadline): the worker leaves it, answering 504 if nothing went out
 * and cutting the response otherwise, and the app is told the client is
 * gone (receive() -> http.disconnect, send() raises) so that it ends on
 * the loop. Not logged when the Apache child hung up first: it logged
 * its own 504 (PYH0071). */
static int asgi_timed_out(asgi_req *a, pyh_request *req)
{
    request_rec *r = req->r;
    if (!a->gone_told) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PYH0260: ASGI request %s %s ran past request-timeout "
                      "of daemon group '%s'; %s",
                      r->method, ap_escape_logitem(r->pool, r->uri),
                      req->conf.process_group,
                      req->passed ? "response cut" : "answering 504");
        req->client_gone = 1;
        a->gone_told = 1;
        apr_atomic_inc32(&a->refs);
        asgi_complete(a, PYH_ASGI_GONE);
    }
    if (req->passed) {
        asgi_abort_response(req);
        return OK;
    }
    asgi_unsent_error(req);
    return HTTP_GATEWAY_TIME_OUT;
}

/* ---- WebSocket (RFC 6455): the handshake and the worker's side ----------
 * After websocket.accept the worker owns the upgraded connection: it polls
 * the socket and an eventfd the loop's posts write, feeds the bytes read
 * through the connection's input filters to websocket.c's protocol core,
 * and writes what the core asks for through the connection's output
 * filters. Everything about one connection lives in asgi_ws and all I/O
 * goes through asgi_ws_read_some/asgi_ws_flush, so a later step can move
 * idle connections off the worker thread (to the MPM's event loop) without
 * touching the protocol or the loop side. */

#define ASGI_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define ASGI_WS_DEFAULT_PING 20
#define ASGI_WS_CLOSE_WAIT_MS 5000 /* for the client's close frame */

typedef struct {
    request_rec *r;
    conn_rec *c;
    pyh_ws *core;
    apr_bucket_brigade *bb;
    int fd;                   /* the client socket, for poll() */
    char *held;               /* a message read, not yet asked for */
    size_t held_len;
    int held_type;            /* 1 text, 2 binary; 0: none */
    int read_pending;         /* the app waits in receive() */
    int gone;                 /* the connection is over */
    int code;                 /* ... and websocket.disconnect's code */
    int input_done;           /* EOF or a read error */
    int h2_body_eos_seen;     /* HTTP/2: the request body's EOS went by */
    int ping_interval_ms, ping_timeout_ms;
    apr_time_t last_heard;    /* last bytes from the client */
    apr_time_t ping_sent;     /* 0: no ping outstanding */
    apr_time_t closing_since; /* 0: we have not sent a close frame */
} asgi_ws;

/* A valid WebSocket upgrade request? 0: no upgrade asked for (a normal
 * HTTP request); 1: yes; an HTTP status for a broken one. HTTP/1.1 only:
 * an HTTP/2 stream (RFC 8441) has no Upgrade header. */
static int asgi_ws_requested(request_rec *r)
{
    const char *upgrade = apr_table_get(r->headers_in, "Upgrade");
    const char *connection = apr_table_get(r->headers_in, "Connection");
    const char *version = apr_table_get(r->headers_in, "Sec-WebSocket-Version");
    const char *key = apr_table_get(r->headers_in, "Sec-WebSocket-Key");
    char decoded[32];
    size_t i;
    if (!upgrade || !connection || r->proto_num < HTTP_VERSION(1, 1)
        || !ap_find_token(r->pool, upgrade, "websocket")
        || !ap_find_token(r->pool, connection, "upgrade"))
        return 0;
    if (r->method_number != M_GET)
        return HTTP_BAD_REQUEST;
    if (!version || strcmp(version, "13")) {
        /* RFC 6455 4.4: say which version we speak */
        apr_table_setn(r->err_headers_out, "Sec-WebSocket-Version", "13");
        return HTTP_UPGRADE_REQUIRED;
    }
    /* base64 of 16 bytes: 22 characters and "==" */
    if (!key || strlen(key) != 24 || strcmp(key + 22, "=="))
        return HTTP_BAD_REQUEST;
    for (i = 0; i < 22; i++)
        if (!apr_isalnum(key[i]) && key[i] != '+' && key[i] != '/')
            return HTTP_BAD_REQUEST;
    if (apr_base64_decode_len(key) > (int)sizeof(decoded)
        || apr_base64_decode(decoded, key) != 16)
        return HTTP_BAD_REQUEST;
    return 1;
}

static const char *asgi_ws_accept_value(request_rec *r)
{
    const char *key = apr_table_get(r->headers_in, "Sec-WebSocket-Key");
    unsigned char digest[APR_SHA1_DIGESTSIZE];
    apr_sha1_ctx_t sha;
    char *out = apr_palloc(r->pool, apr_base64_encode_len(sizeof(digest)));
    apr_sha1_init(&sha);
    apr_sha1_update(&sha, key, (unsigned int)strlen(key));
    apr_sha1_update(&sha, ASGI_WS_GUID, (unsigned int)strlen(ASGI_WS_GUID));
    apr_sha1_final(digest, &sha);
    apr_base64_encode(out, (const char *)digest, sizeof(digest));
    return out;
}

/* Writes what the core has queued. 0, or -1 when the client is gone. */
static int asgi_ws_flush(asgi_ws *w)
{
    size_t len;
    const unsigned char *out = pyh_ws_output(w->core, &len);
    apr_status_t rv;
    if (!len)
        return 0;
    if (w->c->aborted)
        return -1;
    APR_BRIGADE_INSERT_TAIL(w->bb, apr_bucket_transient_create(
                                       (const char *)out, len, w->c->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(w->bb, apr_bucket_flush_create(w->c->bucket_alloc));
    rv = ap_pass_brigade(w->c->output_filters, w->bb);
    apr_brigade_cleanup(w->bb);
    pyh_ws_output_consumed(w->core, len);
    if (rv != APR_SUCCESS || w->c->aborted) {
        w->input_done = 1;
        return -1;
    }
    return 0;
}

/* Reads what the connection has without blocking and feeds it to the
 * core; the end of input is fed as EOF. */
static void asgi_ws_read_some(asgi_ws *w)
{
    for (;;) {
        apr_status_t rv;
        apr_bucket *b;
        rv = ap_get_brigade(w->c->input_filters, w->bb, AP_MODE_READBYTES,
                            APR_NONBLOCK_READ, ASGI_READ_CHUNK);
        if (APR_STATUS_IS_EAGAIN(rv)
            || (rv == APR_SUCCESS && APR_BRIGADE_EMPTY(w->bb))) {
            apr_brigade_cleanup(w->bb);
            return;
        }
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, w->r,
                          "PYH0253: WebSocket input ended");
            apr_brigade_cleanup(w->bb);
            w->input_done = 1;
            pyh_ws_feed_eof(w->core);
            return;
        }
        for (b = APR_BRIGADE_FIRST(w->bb); b != APR_BRIGADE_SENTINEL(w->bb);
             b = APR_BUCKET_NEXT(b)) {
            const char *data;
            apr_size_t n;
            if (APR_BUCKET_IS_EOS(b)) {
                /* On an HTTP/2 stream (RFC 8441) mod_http2 ends the
                 * rewritten GET's empty body with an EOS before the
                 * stream's data: only the next one ends the input. */
                if (w->c->master && !w->h2_body_eos_seen) {
                    w->h2_body_eos_seen = 1;
                    continue;
                }
                w->input_done = 1;
                break;
            }
            if (apr_bucket_read(b, &data, &n, APR_BLOCK_READ) != APR_SUCCESS) {
                w->input_done = 1;
                break;
            }
            if (n)
                pyh_ws_feed(w->core, data, n);
        }
        apr_brigade_cleanup(w->bb);
        w->last_heard = apr_time_now();
        if (w->input_done) {
            pyh_ws_feed_eof(w->core);
            return;
        }
    }
}

/* Turns the core's events into state until a message is held for the app
 * or the connection is over. */
static void asgi_ws_pump(asgi_ws *w)
{
    pyh_ws_event ev;
    while (!w->held_type && !w->gone && pyh_ws_next_event(w->core, &ev)) {
        switch (ev.type) {
        case PYH_WS_EV_TEXT:
        case PYH_WS_EV_BINARY:
            if (!(w->held = malloc(ev.len ? ev.len : 1))) {
                pyh_ws_send_close(w->core, PYH_WS_CLOSE_INTERNAL_ERROR, NULL, 0);
                w->gone = 1;
                w->code = PYH_WS_CLOSE_INTERNAL_ERROR;
                break;
            }
            memcpy(w->held, ev.data, ev.len);
            w->held_len = ev.len;
            w->held_type = ev.type == PYH_WS_EV_TEXT ? 1 : 2;
            break;
        case PYH_WS_EV_PING:
            break; /* the pong is queued */
        case PYH_WS_EV_PONG:
            w->ping_sent = 0;
            break;
        case PYH_WS_EV_CLOSE:
            w->gone = 1;
            w->code = ev.code;
            break;
        case PYH_WS_EV_ERROR:
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, w->r,
                          "PYH0250: WebSocket closed with %d: %s", ev.code,
                          ev.error);
            w->gone = 1;
            w->code = ev.code;
            break;
        case PYH_WS_EV_EOF:
            w->gone = 1;
            w->code = PYH_WS_CLOSE_ABNORMAL;
            break;
        }
    }
    asgi_ws_flush(w);
    if (w->input_done && !w->gone && !w->held_type) {
        w->gone = 1;
        w->code = PYH_WS_CLOSE_ABNORMAL;
    }
}

static int asgi_ws_stopping(void)
{
    int state = AP_MPMQ_RUNNING;
    return ap_mpm_query(AP_MPMQ_MPM_STATE, &state) == APR_SUCCESS
           && state == AP_MPMQ_STOPPING;
}

/* The 101: our handshake headers, then the app's extra ones. 0, or -1
 * when the client is gone. */
static int asgi_ws_send_101(asgi_req *a, asgi_ws *w, const pyh_ws_pmd *pmd,
                            const char *extensions)
{
    request_rec *r = w->r;
    int i;
    (void)pmd;
    apr_table_clear(r->headers_out);
    apr_table_setn(r->headers_out, "Upgrade", "websocket");
    apr_table_setn(r->headers_out, "Connection", "Upgrade");
    apr_table_setn(r->headers_out, "Sec-WebSocket-Accept", asgi_ws_accept_value(r));
    if (a->x.ws_subprotocol)
        apr_table_setn(r->headers_out, "Sec-WebSocket-Protocol",
                       apr_pstrmemdup(r->pool, a->x.ws_subprotocol,
                                      a->x.ws_subprotocol_len));
    if (extensions)
        apr_table_setn(r->headers_out, "Sec-WebSocket-Extensions", extensions);
    for (i = 0; i < a->x.nheaders; i++) {
        const pyh_asgi_header *h = &a->x.headers[i];
        char *name = apr_pstrmemdup(r->pool, h->name, h->name_len);
        /* the handshake's own headers are ours to set */
        if (asgi_is_hop_by_hop(name) || !strncasecmp(name, "sec-websocket-", 14)
            || !strcasecmp(name, "content-length"))
            continue;
        apr_table_addn(r->headers_out, name,
                       apr_pstrmemdup(r->pool, h->value, h->value_len));
    }
    r->status = HTTP_SWITCHING_PROTOCOLS;
    r->status_line = ap_get_status_line(HTTP_SWITCHING_PROTOCOLS);
    ap_send_interim_response(r, 1);
    return w->c->aborted ? -1 : 0;
}

/* The descriptor poll() watches for the connection's input: its socket,
 * or for an HTTP/2 stream (RFC 8441 through mod_http2's H2WebSockets) the
 * pipe mod_http2 feeds. -1 when there is none. */
static int asgi_ws_pollable(conn_rec *c)
{
#if AP_MODULE_MAGIC_AT_LEAST(20120211, 129)
    apr_pollfd_t pfd;
    apr_os_sock_t s;
    apr_os_file_t f;
    memset(&pfd, 0, sizeof(pfd));
    if (ap_get_pollfd_from_conn(c, &pfd, NULL) != APR_SUCCESS)
        return -1;
    if (pfd.desc_type == APR_POLL_SOCKET && pfd.desc.s
        && apr_os_sock_get(&s, pfd.desc.s) == APR_SUCCESS)
        return s;
    if (pfd.desc_type == APR_POLL_FILE && pfd.desc.f
        && apr_os_file_get(&f, pfd.desc.f) == APR_SUCCESS)
        return f;
    return -1;
#else
    apr_os_sock_t s;
    apr_socket_t *sock = c->master ? NULL : ap_get_conn_socket(c);
    return sock && apr_os_sock_get(&s, sock) == APR_SUCCESS ? s : -1;
#endif
}

/* Serves the connection from websocket.accept until the app is done or
 * the client is gone; returns the handler's status. No GIL. */
static int asgi_ws_run(asgi_req *a, pyh_request *req, unsigned work)
{
    request_rec *r = req->r;
    pyh_server_conf *sc = ap_get_module_config(r->server->module_config,
                                               &pyhost_module);
    asgi_ws w;
    pyh_ws_pmd pmd;
    char extensions[160];
    const char *ext = NULL;
    apr_os_sock_t fd = -1;
    int app_done = 0, efd, status = OK;

    memset(&w, 0, sizeof(w));
    memset(&pmd, 0, sizeof(pmd));
    w.r = r;
    w.c = r->connection;
    w.bb = apr_brigade_create(r->pool, w.c->bucket_alloc);
    w.ping_interval_ms = 1000 * (sc->ws_ping_interval != PYH_UNSET
                                     ? sc->ws_ping_interval : ASGI_WS_DEFAULT_PING);
    w.ping_timeout_ms = 1000 * (sc->ws_ping_timeout != PYH_UNSET
                                    ? sc->ws_ping_timeout : ASGI_WS_DEFAULT_PING);
    if (sc->ws_compression != 0
        && pyh_ws_pmd_negotiate(apr_table_get(r->headers_in,
                                              "Sec-WebSocket-Extensions"),
                                &pmd, extensions, sizeof(extensions)) == 1)
        ext = extensions;
    w.core = pyh_ws_new(sc->ws_max_message != PYH_UNSET
                            ? (size_t)sc->ws_max_message : 0,
                        ext ? &pmd : NULL);
    efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    fd = asgi_ws_pollable(r->connection);
    if (fd < 0 || !w.core || efd <= 0) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, errno, r,
                      "PYH0251: cannot set up the WebSocket connection");
        if (efd > 0)
            close(efd);
        pyh_ws_free(w.core);
        a->x.send_failed = 1;
        /* nothing was sent yet: a plain 500 */
        pthread_mutex_lock(&a->mu);
        a->worker_gone = 1;
        a->x.ws_code = PYH_WS_CLOSE_ABNORMAL;
        pthread_mutex_unlock(&a->mu);
        asgi_complete(a, PYH_ASGI_SEND | PYH_ASGI_FINISHED);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    w.fd = fd;
    pthread_mutex_lock(&a->mu);
    a->ws_efd = efd;
    pthread_mutex_unlock(&a->mu);

    /* The request's timeouts (mod_reqtimeout) are for reading a request,
     * not a long-lived connection; the connection ends with us. */
    ap_remove_input_filter_byhandle(w.c->input_filters, "reqtimeout");
    w.c->keepalive = AP_CONN_CLOSE;
    a->x.send_failed = asgi_ws_send_101(a, &w, &pmd, ext) < 0;
    req->headers_sent = 1;
    req->passed = 1;
    if (a->x.send_failed) {
        w.gone = 1;
        w.code = PYH_WS_CLOSE_ABNORMAL;
    }
    w.last_heard = apr_time_now();
    work &= ~PYH_ASGI_WS_ACCEPT;
    {
        unsigned bits = PYH_ASGI_SEND;
        if (work & PYH_ASGI_READ)
            w.read_pending = 1;
        work = 0;
        asgi_complete(a, bits);
    }

    for (;;) {
        unsigned bits = 0;
        struct pollfd pfd[2];
        int nfd = 1, timeout = -1, leave = 0;
        apr_time_t now;

        pthread_mutex_lock(&a->mu);
        work |= a->work;
        a->work = 0;
        pthread_mutex_unlock(&a->mu);
        if (work & PYH_ASGI_READ)
            w.read_pending = 1;
        if (work & PYH_ASGI_SEND) {
            a->x.send_failed =
                w.gone || pyh_ws_get_state(w.core) != PYH_WS_OPEN
                || pyh_ws_send_message(w.core, a->x.ws_binary, a->x.body,
                                       a->x.body_len) < 0
                || asgi_ws_flush(&w) < 0;
            bits |= PYH_ASGI_SEND;
        }
        if (work & PYH_ASGI_WS_CLOSE) {
            a->x.send_failed = 0;
            if (!w.gone && pyh_ws_get_state(w.core) == PYH_WS_OPEN) {
                if (pyh_ws_send_close(w.core, a->x.ws_code, a->x.body,
                                      a->x.body_len) < 0)
                    /* _asgi.pyx checked the code and reason; be safe */
                    pyh_ws_send_close(w.core, PYH_WS_CLOSE_NORMAL, NULL, 0);
                w.closing_since = apr_time_now();
                asgi_ws_flush(&w);
            }
            bits |= PYH_ASGI_SEND;
        }
        if (work & PYH_ASGI_DONE) {
            if (a->x.error)
                pyh_log_text(r, NULL, APLOG_ERR, a->x.error);
            app_done = 1;
            if (!w.gone && pyh_ws_get_state(w.core) == PYH_WS_OPEN) {
                pyh_ws_send_close(w.core, a->x.error ? PYH_WS_CLOSE_INTERNAL_ERROR
                                                     : PYH_WS_CLOSE_NORMAL,
                                  NULL, 0);
                w.closing_since = apr_time_now();
                asgi_ws_flush(&w);
            }
        }
        work = 0;
        asgi_ws_pump(&w);
        now = apr_time_now();
        if (!w.gone && asgi_ws_stopping()) {
            /* A stop or graceful restart: do not hold the child up. */
            pyh_ws_send_close(w.core, PYH_WS_CLOSE_GOING_AWAY,
                              "server shutting down", 20);
            asgi_ws_flush(&w);
            w.gone = 1;
            w.code = PYH_WS_CLOSE_GOING_AWAY;
        }
        if (w.closing_since && !w.gone
            && now - w.closing_since > apr_time_from_msec(ASGI_WS_CLOSE_WAIT_MS)) {
            w.gone = 1; /* the client never answered our close */
            w.code = PYH_WS_CLOSE_ABNORMAL;
        }
        if (!w.gone && !w.closing_since && w.ping_interval_ms > 0) {
            if (w.ping_sent && now - w.ping_sent
                                   > apr_time_from_msec(w.ping_timeout_ms)) {
                ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                              "PYH0252: WebSocket keepalive ping unanswered "
                              "for %d ms; closing with 1011",
                              w.ping_timeout_ms);
                pyh_ws_send_close(w.core, PYH_WS_CLOSE_INTERNAL_ERROR,
                                  "keepalive ping timeout", 22);
                asgi_ws_flush(&w);
                w.gone = 1;
                w.code = PYH_WS_CLOSE_INTERNAL_ERROR;
            }
            else if (!w.ping_sent && now - w.last_heard
                                         > apr_time_from_msec(w.ping_interval_ms)) {
                pyh_ws_send_ping(w.core, "pyhost", 6);
                asgi_ws_flush(&w);
                w.ping_sent = now;
            }
        }
        if (w.read_pending && !app_done && (w.held_type || w.gone)) {
            free(a->rbuf); /* the loop copied it: it asked again */
            a->rbuf = NULL;
            if (w.held_type) {
                a->rbuf = w.held;
                a->x.rbuf = w.held;
                a->x.read_len = w.held_len;
                a->x.ws_type = w.held_type;
                w.held = NULL;
                w.held_type = 0;
            }
            else {
                a->x.ws_type = 0;
                a->x.ws_code = w.code;
            }
            w.read_pending = 0;
            bits |= PYH_ASGI_READ;
        }
        /* Over when the app is done and the connection closed (or never
         * will be), or when the connection is over and the app has been
         * told (or will learn it when its next post fails). */
        if (app_done && (w.gone || !w.closing_since))
            leave = 1;
        if (w.gone && !w.read_pending)
            leave = 1;
        if (leave) {
            unsigned late;
            pthread_mutex_lock(&a->mu);
            /* Work posted since the top of this turn succeeded for the
             * loop, which now waits for its completion: answer it. */
            late = a->work;
            a->work = 0;
            a->worker_gone = 1;
            a->x.ws_code = w.code ? w.code : PYH_WS_CLOSE_ABNORMAL;
            pthread_mutex_unlock(&a->mu);
            if ((late & PYH_ASGI_READ) && !(bits & PYH_ASGI_READ)) {
                a->x.ws_type = 0;
                bits |= PYH_ASGI_READ;
            }
            if (late & (PYH_ASGI_SEND | PYH_ASGI_WS_CLOSE)) {
                a->x.send_failed = 1;
                bits |= PYH_ASGI_SEND;
            }
            if (bits)
                bits |= PYH_ASGI_FINISHED;
        }
        if (bits)
            asgi_complete(a, bits);
        if (leave)
            break;

        pfd[0].fd = efd;
        pfd[0].events = POLLIN;
        if (!w.gone && !w.held_type && !w.input_done) {
            pfd[1].fd = w.fd;
            pfd[1].events = POLLIN;
            nfd = 2;
        }
        if (w.closing_since)
            timeout = ASGI_WS_CLOSE_WAIT_MS;
        else if (w.ping_interval_ms > 0)
            timeout = w.ping_sent ? w.ping_timeout_ms : w.ping_interval_ms;
        /* wake at least once a second to notice a stopping server */
        if (timeout < 0 || timeout > 1000)
            timeout = 1000;
        if (poll(pfd, nfd, timeout) < 0) {
            if (errno != EINTR && !w.gone) {
                /* cannot wait: end the connection, tell the app */
                w.gone = 1;
                w.code = PYH_WS_CLOSE_ABNORMAL;
            }
            continue;
        }
        if (pfd[0].revents) {
            uint64_t n; /* only a wake-up: the work is in a->work */
            if (read(efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
                ap_log_rerror(APLOG_MARK, APLOG_DEBUG, errno, r,
                              "PYH0253: reading the WebSocket eventfd");
        }
        if (nfd == 2 && pfd[1].revents)
            asgi_ws_read_some(&w);
    }
    free(w.held);
    pyh_ws_free(w.core);
    /* Nothing more may reach the client after the WebSocket: Apache's end
     * of request would otherwise write a response of its own. */
    w.c->aborted = 1;
    return status;
}

/* Serves the loop's work until the request is over; no GIL. */
static int asgi_serve(asgi_req *a, pyh_request *req)
{
    int status = OK, leave = 0;
    for (;;) {
        unsigned work, bits = 0;
        pthread_mutex_lock(&a->mu);
        work = asgi_wait_work(a, req);
        a->work = 0;
        pthread_mutex_unlock(&a->mu);
        if (!work && a->timed_out) {
            status = asgi_timed_out(a, req);
            leave = 1;
        }
        if (work & PYH_ASGI_WS_ACCEPT) {
            int status;
            pyh_metrics_websocket(req->r, 1); /* pyhost_websockets_open */
            status = asgi_ws_run(a, req, work);
            pyh_metrics_websocket(req->r, -1);
            return status;
        }
        if (work & PYH_ASGI_READ) {
            asgi_read(a, req);
            bits |= PYH_ASGI_READ;
        }
        if (work & PYH_ASGI_SEND) {
            if (asgi_write(a, req, &status))
                leave = 1;
            bits |= PYH_ASGI_SEND;
        }
        if ((work & PYH_ASGI_DONE) && !leave) {
            status = asgi_done(a, req, 0);
            leave = 1;
        }
        if (leave) {
            unsigned late;
            pthread_mutex_lock(&a->mu);
            /* Work posted since this turn took its work (the lock was
             * free while the response went out: an app task's receive()
             * asking for the body as its response completes) was accepted
             * by post(), and the loop waits for its completion: answer it
             * here, or that receive() would wait for ever and its posted
             * reference would keep the request alive. */
            late = a->work;
            a->work = 0;
            a->worker_gone = 1;
            /* (A timeout leaves between posts the same way: what the loop
             * posted since fails below, so that its awaitable ends.) */
            pthread_mutex_unlock(&a->mu);
            if ((late & PYH_ASGI_READ) && !(bits & PYH_ASGI_READ)) {
                /* the response is complete: receive() says http.disconnect */
                a->x.read_failed = 1;
                a->x.read_len = 0;
                a->x.read_eos = 1;
                bits |= PYH_ASGI_READ;
            }
            if ((late & PYH_ASGI_SEND) && !(bits & PYH_ASGI_SEND)) {
                a->x.send_failed = 1;
                bits |= PYH_ASGI_SEND;
            }
            if ((late & PYH_ASGI_DONE) && !(work & PYH_ASGI_DONE)
                && a->x.error)
                pyh_log_text(req->r, NULL, APLOG_ERR, a->x.error);
            /* Only with a SEND or READ completion, whose posted reference
             * keeps the loop's request object (and so the xfer) alive until
             * the loop has handled it; after a DONE the loop knows. */
            if (bits)
                bits |= PYH_ASGI_FINISHED;
        }
        if (bits)
            asgi_complete(a, bits);
        if (leave)
            return status;
    }
}

int pyh_asgi_handle(pyh_interp *in, pyh_request *req, PyObject *app,
                    int lifespan)
{
    request_rec *r = req->r;
    pyh_asgi_scope_in sc;
    asgi_loop *lp;
    asgi_req *a;
    int status, websocket = asgi_ws_requested(r);

    if (req->relay_fd > 0)
        websocket = 0; /* the Apache child keeps WebSockets from daemons */

    if (websocket > 1) {
        /* a broken WebSocket handshake: the app never sees it */
        Py_DECREF(app);
        PyEval_SaveThread();
        return websocket;
    }
    if (!(lp = asgi_loop_get(in, r->server))) {
        Py_DECREF(app);
        PyEval_SaveThread();
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* mod_mime typed the script file; the response's type is the app's */
    r->content_type = NULL;
    r->content_encoding = NULL;
    r->content_languages = NULL;
    req->content_length = -1;
    req->obb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    asgi_scope_in(req, &sc);
    sc.websocket = websocket;
    /* An HTTP/1.1 connection that asked for a WebSocket ends with this
     * request whatever the app answers: the 101 hands it over, and a
     * denial (403, or the app's websocket.http.response) is followed by
     * a close, as the asgiref extension says. */
    if (websocket && !r->connection->master)
        r->connection->keepalive = AP_CONN_CLOSE;
    if (!(a = calloc(1, sizeof(*a)))) {
        Py_DECREF(app);
        PyEval_SaveThread();
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    a->lp = lp;
    a->refs = 2; /* the worker's and the loop's */
    if (pthread_mutex_init(&a->mu, NULL) || asgi_cond_init(&a->cv)) {
        free(a);
        Py_DECREF(app);
        PyEval_SaveThread();
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    status = lp->bridge->submit(lp->loop, app, lifespan, r->filename, &sc,
                                &a->x);
    if (status < 0)
        pyh_log_exception(in, r, r->server,
                          "PYH0200: starting the ASGI request");
    Py_DECREF(app);
    /* From here the worker needs no Python: it waits for the loop's work
     * and does Apache's I/O without the GIL. */
    PyEval_SaveThread();
    if (status) {
        /* not submitted: the loop never saw the xfer */
        asgi_release(&a->x);
        asgi_release(&a->x);
        return status < 0 ? HTTP_INTERNAL_SERVER_ERROR : status;
    }
    status = asgi_serve(a, req);
    asgi_release(&a->x);
    return status;
}
