/* relay.c - daemon mode's wire (see relay.h). The Apache child's side
 * turns a request into one Q frame on a pooled UNIX connection, answers
 * the daemon's body reads from the client and turns the daemon's frames
 * back into a response. The daemon's side reads the frame into a small
 * request_rec of its own whose output and input filters are this wire, and
 * runs the app through the same WSGI adapter as embedded mode. */
#include "relay.h"
#include "metrics.h"

#include "http_core.h"
#include "http_main.h"
#include "http_protocol.h"
#include "http_request.h"
#include "apr_strings.h"

#include <errno.h>
#include <stddef.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

/* ==== shared: records ======================================================= */

static apr_size_t rec_size(const char *v)
{
    return v ? 5 + strlen(v) + 1 : 0;
}

static char *rec_put(char *p, int kind, const char *v)
{
    uint32_t len;
    if (!v)
        return p;
    len = (uint32_t)strlen(v);
    memcpy(p, &len, 4);
    p[4] = (char)kind;
    memcpy(p + 5, v, len + 1);
    return p + 5 + len + 1;
}

static apr_size_t rec_table_size(const apr_table_t *t)
{
    const apr_array_header_t *arr = apr_table_elts(t);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    apr_size_t n = 0;
    int i;
    for (i = 0; i < arr->nelts; i++)
        if (e[i].key && e[i].val)
            n += rec_size(e[i].key) + rec_size(e[i].val);
    return n;
}

static char *rec_put_table(char *p, const apr_table_t *t, int kind)
{
    const apr_array_header_t *arr = apr_table_elts(t);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    int i;
    for (i = 0; i < arr->nelts; i++) {
        if (!e[i].key || !e[i].val)
            continue;
        p = rec_put(p, kind, e[i].key);
        p = rec_put(p, kind + 1, e[i].val);
    }
    return p;
}

/* Moves up to n bytes buffered in buf[*pos, len) to dest; returns how
 * many. Both ends read frames through a buffer like this. */
static apr_size_t relay_take(const char *buf, apr_size_t *pos, apr_size_t len,
                             char *dest, apr_size_t n)
{
    apr_size_t have = len - *pos;
    if (have > n)
        have = n;
    memcpy(dest, buf + *pos, have);
    *pos += have;
    return have;
}

/* ==== Apache child side ===================================================== */

typedef struct pyh_rconn {
    int fd;
    char *buf;
    apr_size_t pos, len;
    int passed_fd;              /* a P frame's descriptor, received with its
                                   first byte and not taken yet; -1: none */
    const char *fd_lost;        /* why a descriptor was lost: NULL: none */
    struct pyh_rconn *next;
} pyh_rconn;

static void rc_close(pyh_rconn *rc)
{
    if (rc->fd >= 0)
        close(rc->fd);
    if (rc->passed_fd >= 0)
        close(rc->passed_fd);
    free(rc->buf);
    free(rc);
}

/* An idle connection is dead when it is readable: a live daemon never
 * speaks first, so data (a goodbye) or EOF both mean "don't use". */
static int rc_stale(pyh_rconn *rc)
{
    struct pollfd pfd;
    pfd.fd = rc->fd;
    pfd.events = POLLIN | POLLRDHUP;
    pfd.revents = 0;
    return rc->len > rc->pos || poll(&pfd, 1, 0) != 0;
}

static int rc_wait(int fd, short events, apr_interval_time_t timeout)
{
    struct pollfd pfd;
    int n;
    pfd.fd = fd;
    pfd.events = events;
    do {
        pfd.revents = 0;
        n = poll(&pfd, 1, timeout < 0 ? -1 : (int)(timeout / 1000));
    } while (n < 0 && errno == EINTR);
    if (n == 0)
        return APR_TIMEUP;
    return n < 0 ? errno : 0;
}

static pyh_rconn *rc_connect(request_rec *r, pyh_daemon *d, int *status)
{
    struct sockaddr_un sa;
    apr_time_t until = apr_time_now() + d->connect_timeout;
    pyh_rconn *rc;
    int fd, err = 0;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    apr_cpystrn(sa.sun_path, d->socket_path, sizeof(sa.sun_path));
    for (;;) {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            err = errno;
            break;
        }
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
        /* EAGAIN: the backlog is full; ECONNREFUSED: nobody listens yet. */
        if ((err != EAGAIN && err != ECONNREFUSED && err != EINTR)
            || apr_time_now() >= until)
            break;
        apr_sleep(apr_time_from_msec(5));
    }
    if (fd < 0) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, err, r,
                      "PYH0070: cannot connect to daemon group '%s' at '%s' "
                      "within connect-timeout; answering 503",
                      d->name, d->socket_path);
        *status = HTTP_SERVICE_UNAVAILABLE;
        return NULL;
    }
    rc = calloc(1, sizeof(*rc));
    if (!rc || !(rc->buf = malloc(PYH_RELAY_CHUNK))) {
        free(rc);
        close(fd);
        *status = HTTP_INTERNAL_SERVER_ERROR;
        return NULL;
    }
    rc->fd = fd;
    rc->passed_fd = -1;
    return rc;
}

static pyh_rconn *rc_get(request_rec *r, pyh_daemon *d, int fresh,
                         int *reused, int *status)
{
    pyh_rconn *rc = NULL;
    if (d->idle_mutex && !fresh) {
        apr_thread_mutex_lock(d->idle_mutex);
        while ((rc = d->idle)) {
            d->idle = rc->next;
            if (!rc_stale(rc))
                break;
            rc_close(rc);
        }
        apr_thread_mutex_unlock(d->idle_mutex);
    }
    *reused = rc != NULL;
    return rc ? rc : rc_connect(r, d, status);
}

static void rc_put(pyh_daemon *d, pyh_rconn *rc)
{
    /* Bytes read past the end of the response can only be a goodbye (a
     * daemon retires connections right after a request): dropping them
     * with the buffer would hide it from rc_stale. */
    if (!d->idle_mutex || rc->pos < rc->len || rc->passed_fd >= 0
        || rc->fd_lost) {
        rc_close(rc);
        return;
    }
    apr_thread_mutex_lock(d->idle_mutex);
    rc->next = d->idle;
    d->idle = rc;
    apr_thread_mutex_unlock(d->idle_mutex);
}

static apr_status_t rc_write(pyh_rconn *rc, struct iovec *iov, int n,
                             apr_interval_time_t timeout)
{
    while (n > 0) {
        ssize_t w = writev(rc->fd, iov, n);
        if (w < 0) {
            apr_status_t rv;
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                return errno;
            if ((rv = rc_wait(rc->fd, POLLOUT, timeout)))
                return rv;
            continue;
        }
        while (n > 0 && (apr_size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (apr_size_t)w;
        }
    }
    return APR_SUCCESS;
}

static apr_status_t rc_frame(pyh_rconn *rc, int type, const void *data,
                             apr_size_t len, apr_interval_time_t timeout)
{
    unsigned char hdr[PYH_FRAME_HDR] = {0};
    uint32_t l = (uint32_t)len;
    struct iovec iov[2];
    hdr[0] = (unsigned char)type;
    memcpy(hdr + 4, &l, 4);
    iov[0].iov_base = hdr;
    iov[0].iov_len = PYH_FRAME_HDR;
    iov[1].iov_base = (void *)data;
    iov[1].iov_len = len;
    return rc_write(rc, iov, len ? 2 : 1, timeout);
}

/* read() that also takes the descriptor a P frame carries: every read
 * of the connection goes through here, as the kernel hands a descriptor
 * to whichever read takes its frame's first byte (and would close it for
 * a plain read()). The descriptor waits in rc until its frame is read. */
static ssize_t rc_recv(pyh_rconn *rc, char *dest, apr_size_t n)
{
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int) * 2)];
    } ctl;
    struct iovec iov;
    struct msghdr msg;
    struct cmsghdr *c;
    ssize_t got;

    iov.iov_base = dest;
    iov.iov_len = n;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.space;
    msg.msg_controllen = sizeof(ctl.space);
    got = recvmsg(rc->fd, &msg, MSG_CMSG_CLOEXEC);
    if (got < 0)
        return got;
    for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        int fds[2];
        apr_size_t i, nfd;
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        if (nfd > 2)
            nfd = 2;
        memcpy(fds, CMSG_DATA(c), nfd * sizeof(int));
        for (i = 0; i < nfd; i++) {
            /* One per P frame, and one frame at a time: a second is the
             * daemon's error, not a descriptor to keep. */
            if (rc->passed_fd < 0 && i == 0)
                rc->passed_fd = fds[i];
            else {
                close(fds[i]);
                rc->fd_lost = "more descriptors than files came";
            }
        }
    }
    /* The kernel could not install the descriptor (this process is at its
     * RLIMIT_NOFILE): it was dropped. */
    if (msg.msg_flags & MSG_CTRUNC)
        rc->fd_lost = "this process could not receive it (MSG_CTRUNC: "
                      "out of file descriptors?)";
    return got;
}

/* Reads exactly n bytes (buffered). */
static apr_status_t rc_read(pyh_rconn *rc, char *dest, apr_size_t n,
                            apr_interval_time_t timeout)
{
    while (n) {
        apr_size_t have = relay_take(rc->buf, &rc->pos, rc->len, dest, n);
        ssize_t got;
        if (have) {
            dest += have;
            n -= have;
            continue;
        }
        /* The answer is rarely there already: wait first, then read, so
         * a request costs no failed read(). */
        {
            apr_status_t rv = rc_wait(rc->fd, POLLIN, timeout);
            if (rv)
                return rv;
        }
        if (n >= PYH_RELAY_CHUNK) {
            got = rc_recv(rc, dest, n);
            if (got > 0) {
                dest += got;
                n -= (apr_size_t)got;
                continue;
            }
        }
        else {
            got = rc_recv(rc, rc->buf, PYH_RELAY_CHUNK);
            if (got > 0) {
                rc->pos = 0;
                rc->len = (apr_size_t)got;
                continue;
            }
        }
        if (got == 0)
            return APR_EOF;
        if (errno != EINTR && errno != EAGAIN)
            return errno;
    }
    return APR_SUCCESS;
}

/* The script the daemon runs: a WSGIHandlerScript's, else the file. */
static const char *relay_script(request_rec *r, const pyh_request *req)
{
    return req->script_path ? req->script_path : r->filename;
}

/* The Q frame: fixed fields, then records. */
static char *relay_build_request(request_rec *r, pyh_request *req,
                                 apr_size_t *len)
{
    pyh_server_conf *sconf =
        ap_get_module_config(r->server->module_config, &pyhost_module);
    apr_size_t n = PYH_FRAME_HDR + sizeof(pyh_q_fixed);
    pyh_q_fixed fx;
    uint32_t plen;
    char *buf, *p;
    int i;

    for (i = 0; i < PYH_K_COUNT; i++)
        n += rec_size(req->vars[i]);
    n += rec_table_size(r->headers_in) + rec_table_size(r->subprocess_env)
         + rec_size(relay_script(r, req)) + rec_size(req->conf.callable_object)
         + rec_size(req->app_group) + rec_size(r->uri);
    p = buf = apr_palloc(r->pool, n);
    memset(p, 0, PYH_FRAME_HDR);
    p[0] = PYH_F_REQUEST;
    plen = (uint32_t)(n - PYH_FRAME_HDR);
    memcpy(p + 4, &plen, 4);
    p += PYH_FRAME_HDR;
    memcpy(fx.secret, pyh_relay_secret, sizeof(fx.secret));
    fx.flags = (r->header_only ? PYH_Q_HEADER_ONLY : 0)
               | (req->conf.script_reloading ? PYH_Q_RELOADING : 0)
               | (req->conf.error_override ? PYH_Q_ERROR_OVERRIDE : 0)
               | (req->conf.pass_authorization ? PYH_Q_PASS_AUTH : 0)
               | (req->conf.chunked_request || req->asgi ? PYH_Q_CHUNKED : 0)
               | (req->conf.ignore_activity == 1 ? PYH_Q_IGNORE_ACTIVITY : 0)
               | (req->asgi ? PYH_Q_ASGI
                                  | (unsigned)req->lifespan
                                        << PYH_Q_LIFESPAN_SHIFT
                            : 0);
    fx.server_index = sconf->index;
    /* 0: the daemon stats the script itself (a handler script is not the
     * file Apache looked up) */
    fx.script_mtime = req->script_path ? 0 : r->finfo.mtime;
    fx.request_time = r->request_time;
    memcpy(p, &fx, sizeof(fx));
    p += sizeof(fx);
    for (i = 0; i < PYH_K_COUNT; i++)
        p = rec_put(p, PYH_R_VAR + i, req->vars[i]);
    p = rec_put_table(p, r->headers_in, PYH_R_HEADER_NAME);
    p = rec_put_table(p, r->subprocess_env, PYH_R_ENV_NAME);
    p = rec_put(p, PYH_R_FILENAME, relay_script(r, req));
    p = rec_put(p, PYH_R_CALLABLE, req->conf.callable_object);
    p = rec_put(p, PYH_R_APP_GROUP, req->app_group);
    p = rec_put(p, PYH_R_URI, r->uri);
    *len = n;
    return buf;
}

/* Applies an H frame to r. */
static int relay_apply_headers(request_rec *r, char *payload, apr_size_t len)
{
    pyh_wire_h h;
    h.headers = r->headers_out;
    if (pyh_wire_parse_h(payload, len, &h) < 0)
        return -1;
    r->status = h.fx.status;
    if (h.status_line)
        r->status_line = h.status_line;
    if (h.content_type)
        ap_set_content_type(r, h.content_type);
    if (h.fx.content_length >= 0)
        ap_set_content_length(r, h.fx.content_length);
    if (h.fx.close_connection)
        r->connection->keepalive = AP_CONN_CLOSE;
    return 0;
}

/* What relay_response keeps while it reads one response. */
typedef struct {
    request_rec *r;
    pyh_request *req;
    pyh_daemon *d;
    pyh_rconn *rc;
    apr_bucket_alloc_t *ba;
    apr_bucket_brigade *bb;
    apr_interval_time_t io_timeout, first_timeout;
    pyh_wire_resp seen;         /* which frames came so far */
    char *bodybuf;              /* for R answers: one per request */
    apr_off_t pending;          /* bytes in bb not passed on yet */
    int done, status;           /* the response is over: the handler's status */
    int answered;               /* Apache refused the body and answered */
    int watch_client;           /* ASGI: notice a client that goes away */
    int client_left;            /* ... and it did */
    int passed;                 /* something went to the output filters */
    int fd_missing;             /* a P frame came without its descriptor */
} relay_resp;

static void relay_resp_init(relay_resp *rs, request_rec *r, pyh_request *req,
                            pyh_daemon *d, pyh_rconn *rc)
{
    memset(rs, 0, sizeof(*rs));
    rs->r = r;
    rs->req = req;
    rs->d = d;
    rs->rc = rc;
    rs->ba = r->connection->bucket_alloc;
    rs->bb = apr_brigade_create(r->pool, rs->ba);
    rs->io_timeout = d->socket_timeout ? d->socket_timeout : r->server->timeout;
    rs->first_timeout = d->request_timeout ? d->request_timeout
                                           : rs->io_timeout;
    rs->watch_client = req->asgi;
}

/* Between an ASGI app's frames the client may go away (issue 13 point 4,
 * in daemon mode): while no frame is there, the client's connection is
 * looked at every 250 ms, as asgi.c does embedded. A client gone ends the
 * wait with APR_ECONNABORTED; the caller then closes the relay connection,
 * which is how the daemon learns it (its receive() -> http.disconnect). */
static apr_status_t relay_wait_frame(relay_resp *rs,
                                     apr_interval_time_t timeout)
{
    pyh_rconn *rc = rs->rc;
    apr_time_t until = apr_time_now() + timeout;
    for (;;) {
        apr_interval_time_t slice = apr_time_from_msec(250), left;
        apr_status_t rv;
        if (rc->pos < rc->len)
            return APR_SUCCESS;
        left = until - apr_time_now();
        if (left <= 0)
            return APR_TIMEUP;
        if (left < slice)
            slice = left;
        rv = rc_wait(rc->fd, POLLIN, slice);
        if (rv != APR_TIMEUP)
            return rv;
        if (pyh_asgi_client_gone(rs->r)) {
            rs->client_left = 1;
            return APR_ECONNABORTED;
        }
    }
}

/* Reads the next frame's header. */
static apr_status_t relay_next_frame(relay_resp *rs, int *type, uint32_t *len)
{
    unsigned char hdr[PYH_FRAME_HDR];
    apr_interval_time_t timeout = rs->seen.headers ? rs->io_timeout
                                                   : rs->first_timeout;
    apr_status_t rv;
    if (rs->watch_client
        && (rv = relay_wait_frame(rs, timeout)) != APR_SUCCESS)
        return rv;
    rv = rc_read(rs->rc, (char *)hdr, PYH_FRAME_HDR, timeout);
    if (rv != APR_SUCCESS)
        return rv;
    return pyh_wire_header(hdr, type, len) < 0 ? APR_EGENERAL : APR_SUCCESS;
}

static apr_status_t relay_read_payload(relay_resp *rs, uint32_t len,
                                       char **payload)
{
    *payload = NULL;
    if (!len)
        return APR_SUCCESS;
    *payload = apr_palloc(rs->r->pool, len);
    return rc_read(rs->rc, *payload, len, rs->io_timeout);
}

/* A big body chunk goes straight into a heap bucket. */
static apr_status_t relay_big_data(relay_resp *rs, uint32_t len)
{
    char *data = apr_bucket_alloc(len, rs->ba);
    apr_status_t rv = rc_read(rs->rc, data, len, rs->io_timeout);
    /* HEAD after the headers went out: read, then dropped (relay_frame). */
    if (rv != APR_SUCCESS || (rs->r->header_only && rs->r->sent_bodyct)) {
        apr_bucket_free(data);
        return rv;
    }
    APR_BRIGADE_INSERT_TAIL(rs->bb, apr_bucket_heap_create(data, len,
                                                           apr_bucket_free,
                                                           rs->ba));
    rs->pending += len;
    return APR_SUCCESS;
}

/* A P frame: the file whose descriptor came with it becomes a file
 * bucket, as wsgi.file_wrapper's file does in embedded mode (sendfile
 * when EnableSendfile allows, closed with the request pool). Frames
 * before it are already in rs->bb, so the client gets them first. */
static apr_status_t relay_file(relay_resp *rs, const char *payload,
                               uint32_t len)
{
    request_rec *r = rs->r;
    core_dir_config *core = ap_get_core_module_config(r->per_dir_config);
    apr_int32_t flags = APR_FOPEN_READ;
    int fd = rs->rc->passed_fd;
    apr_file_t *af = NULL;
    apr_status_t rv;
    pyh_p_fixed p;
    struct stat st;
    char err[120];

    rs->rc->passed_fd = -1;
    if (pyh_wire_parse_p(payload, len, &p) < 0) {
        if (fd >= 0)
            close(fd);
        return APR_EGENERAL;
    }
    if (fd < 0 || rs->rc->fd_lost || fstat(fd, &st) < 0
        || !S_ISREG(st.st_mode)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PYH0064: daemon group '%s' sent a file for the "
                      "response without a usable descriptor (%s); "
                      "answering 502",
                      rs->d->name,
                      rs->rc->fd_lost ? rs->rc->fd_lost
                      : fd < 0 ? "none came with the frame"
                               : "not a regular file");
        if (fd >= 0)
            close(fd);
        rs->fd_missing = 1;
        return APR_EBADF;
    }
    if (core && core->enable_sendfile == ENABLE_SENDFILE_ON)
        flags |= APR_FOPEN_SENDFILE_ENABLED;
    /* A descriptor under APR's own cleanup, which follows the bucket when
     * a filter sets it aside into a longer-lived pool. */
    rv = pyh_own_file(r, fd, flags, &af);
    close(fd);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      "PYH0065: could not keep the descriptor of a file "
                      "daemon group '%s' sent: %s",
                      rs->d->name, apr_strerror(rv, err, sizeof(err)));
        rs->fd_missing = 1;
        return rv;
    }
    /* HEAD after the headers went out: nothing more (relay_frame). */
    if (!(r->header_only && r->sent_bodyct))
        apr_brigade_insert_file(rs->bb, af, p.offset, p.length, r->pool);
    return APR_SUCCESS;
}

/* Answers an R frame: up to the asked number of body bytes from the
 * client. */
static apr_status_t relay_send_body(relay_resp *rs, const char *payload,
                                    uint32_t len)
{
    uint32_t want = 0;
    apr_size_t got = 0;
    apr_status_t rv = APR_SUCCESS;
    if (len >= 4)
        memcpy(&want, payload, 4);
    if (want > PYH_RELAY_CHUNK)
        want = PYH_RELAY_CHUNK;
    if (!rs->bodybuf)
        rs->bodybuf = apr_palloc(rs->r->pool, PYH_RELAY_CHUNK);
    if (!rs->req->input_eos && want)
        rv = pyh_input_fill(rs->req, rs->bodybuf, want, &got);
    if (rv != APR_SUCCESS) {
        int32_t code = rv;
        rs->req->input_eos = 1;
        rs->answered = rv == AP_FILTER_ERROR;
        return rc_frame(rs->rc, PYH_F_BODY_ERROR, &code, sizeof(code),
                        rs->io_timeout);
    }
    return rc_frame(rs->rc, PYH_F_BODY, rs->bodybuf, got, rs->io_timeout);
}

/* Ends the response with a 502 error bucket: the client connection is
 * cut after what went out already. */
static void relay_cut(relay_resp *rs)
{
    rs->r->connection->keepalive = AP_CONN_CLOSE;
    APR_BRIGADE_INSERT_TAIL(rs->bb, ap_bucket_error_create(HTTP_BAD_GATEWAY,
                                                           NULL, rs->r->pool,
                                                           rs->ba));
    APR_BRIGADE_INSERT_TAIL(rs->bb, apr_bucket_eos_create(rs->ba));
    ap_pass_brigade(rs->r->output_filters, rs->bb);
}

static apr_status_t relay_done(relay_resp *rs, int status)
{
    rs->done = 1;
    rs->status = status;
    return APR_SUCCESS;
}

/* After Apache's HTTP_IN filter refused the body (a bad chunk, a chunked
 * body over LimitRequestBody) and sent the client its error response, the
 * daemon's answer is read to its end, so the connection stays in step,
 * and dropped: it would trail that error page. */
static apr_status_t relay_drop(relay_resp *rs, int type)
{
    if (type == PYH_F_END || type == PYH_F_ABORT || type == PYH_F_STATUS)
        return relay_done(rs, AP_FILTER_ERROR);
    return APR_SUCCESS;
}

/* An I frame: a 103 with the app's Link headers, as asgi.c sends one
 * embedded (HTTP/1.1 and HTTP/2; an HTTP/1.0 client never gets one). The
 * response's own status and headers are left alone. */
static apr_status_t relay_interim(relay_resp *rs, const char *payload,
                                  uint32_t len)
{
    request_rec *r = rs->r;
    apr_table_t *out = r->headers_out, *hint = apr_table_make(r->pool, 4);
    int status = r->status;
    if (pyh_wire_parse_i(payload, len, hint) < 0)
        return APR_EGENERAL;
    if (r->proto_num < HTTP_VERSION(1, 1))
        return APR_SUCCESS;
    r->status = 103;
    r->headers_out = hint;
    ap_send_interim_response(r, 1);
    r->status = status;
    r->headers_out = out;
    return APR_SUCCESS;
}

/* Acts on one frame whose payload has been read. */
static apr_status_t relay_frame(relay_resp *rs, int type, char *payload,
                                uint32_t len)
{
    if (rs->answered && type != PYH_F_READ)
        return relay_drop(rs, type);
    switch (type) {
    case PYH_F_READ:
        return relay_send_body(rs, payload, len);
    case PYH_F_HEADERS:
        return relay_apply_headers(rs->r, payload, len) < 0 ? APR_EGENERAL
                                                            : APR_SUCCESS;
    case PYH_F_DATA:
        /* HEAD: body after the headers went out is dropped here, as
         * wsgi_send does in embedded mode (mod_http2 would send it). */
        if (len && !(rs->r->header_only && rs->r->sent_bodyct)) {
            apr_brigade_write(rs->bb, NULL, NULL, payload, len);
            rs->pending += len;
        }
        return APR_SUCCESS;
    case PYH_F_FILE:
        return relay_file(rs, payload, len);
    case PYH_F_FLUSH:
        APR_BRIGADE_INSERT_TAIL(rs->bb, apr_bucket_flush_create(rs->ba));
        rs->pending = PYH_RELAY_CHUNK;
        return APR_SUCCESS;
    case PYH_F_END:
        APR_BRIGADE_INSERT_TAIL(rs->bb, apr_bucket_eos_create(rs->ba));
        ap_pass_brigade(rs->r->output_filters, rs->bb);
        return relay_done(rs, OK);
    case PYH_F_ABORT:
        /* The app failed after its headers went out. */
        relay_cut(rs);
        return relay_done(rs, OK);
    case PYH_F_STATUS: {
        int status;
        if (pyh_wire_parse_s(payload, len, &status) < 0)
            return APR_EGENERAL;
        return relay_done(rs, status);
    }
    case PYH_F_INTERIM:
        return relay_interim(rs, payload, len);
    default:
        return APR_EGENERAL;
    }
}

/* Passes the body gathered so far on once it is a chunk's worth (or was
 * flushed); -1 when the client is gone. */
static int relay_pass_pending(relay_resp *rs)
{
    apr_status_t rv;
    if (rs->pending < PYH_RELAY_CHUNK)
        return 0;
    rs->pending = 0;
    rs->passed = 1;
    rv = ap_pass_brigade(rs->r->output_filters, rs->bb);
    apr_brigade_cleanup(rs->bb);
    return rv != APR_SUCCESS || rs->r->connection->aborted ? -1 : 0;
}

/* The daemon went away or stopped answering (rv). Not retried: it may
 * have run the request before it died. */
static int relay_failed(relay_resp *rs, apr_status_t rv)
{
    if (!rs->seen.headers) {
        int timeout = rv == APR_TIMEUP;
        ap_log_rerror(APLOG_MARK, APLOG_ERR, timeout ? 0 : rv, rs->r,
                      timeout ? "PYH0071: daemon group '%s' gave no response "
                                "within %s; answering 504"
                              : "PYH0072: daemon group '%s' closed the "
                                "connection before responding (the process "
                                "died?); answering 502",
                      rs->d->name,
                      rs->d->request_timeout ? "request-timeout"
                                             : "socket-timeout");
        if (timeout) {
            pyh_metrics_request_timeout(rs->d);
            return HTTP_GATEWAY_TIME_OUT;
        }
        return HTTP_BAD_GATEWAY;
    }
    ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, rs->r,
                  "PYH0073: daemon group '%s' stopped in the middle of a "
                  "response; cutting it",
                  rs->d->name);
    apr_brigade_cleanup(rs->bb);
    relay_cut(rs);
    return OK;
}

/* Reads the daemon's response frames into r's output. Returns the
 * handler's status; *reusable says whether rc may serve another request,
 * *retry that nothing happened and the request may be sent again. */
static int relay_response(request_rec *r, pyh_request *req, pyh_daemon *d,
                          pyh_rconn *rc, int *reusable, int *retry)
{
    relay_resp rs;
    apr_status_t rv;

    relay_resp_init(&rs, r, req, d, rc);
    *reusable = 0;
    *retry = 0;
    for (;;) {
        int type;
        uint32_t len;
        char *payload;
        int order;
        if ((rv = relay_next_frame(&rs, &type, &len)) != APR_SUCCESS)
            break;
        if ((order = pyh_wire_resp_next(&rs.seen, type, len)) == PYH_WIRE_RETRY) {
            *retry = 1;
            return OK;
        }
        if (order == PYH_WIRE_BAD) {
            rv = APR_EGENERAL;
            break;
        }
        if (type == PYH_F_DATA && len > 8192 && !rs.answered)
            rv = relay_big_data(&rs, len);
        else if ((rv = relay_read_payload(&rs, len, &payload)) == APR_SUCCESS)
            rv = relay_frame(&rs, type, payload, len);
        if (rv != APR_SUCCESS && rs.fd_missing && !rs.passed) {
            /* Nothing reached the client: Apache's own error page. */
            apr_brigade_cleanup(rs.bb);
            return HTTP_BAD_GATEWAY;
        }
        if (rv != APR_SUCCESS)
            break;
        if (rs.done) {
            *reusable = 1;
            return rs.status;
        }
        /* Client gone: drop the daemon connection, the app sees its next
         * write fail. */
        if (relay_pass_pending(&rs) < 0)
            return OK;
    }
    if (rs.client_left) {
        /* not the daemon's fault: nothing to log, nobody to answer */
        if (!r->connection->master)
            r->connection->aborted = 1;
        return OK;
    }
    return relay_failed(&rs, rv);
}

int pyh_relay_request(request_rec *r, pyh_request *req, pyh_daemon *d)
{
    apr_size_t qlen;
    char *q;
    int attempt, status = OK;

    /* mod_mime typed the script file; the response's type is the app's. */
    r->content_type = NULL;
    pyh_env_collect(req);
    if (req->asgi) /* the scope has the method as sent (no HEAD -> GET) */
        req->vars[PYH_K_REQUEST_METHOD] = r->method;
    q = relay_build_request(r, req, &qlen);
    /* A retry goes to a new connection: the listener hands it to a
     * process that is not recycling. */
    for (attempt = 0; attempt < 5; attempt++) {
        apr_interval_time_t timeout = d->socket_timeout ? d->socket_timeout
                                                        : r->server->timeout;
        int reused = 0, reusable = 0, retry = 0;
        struct iovec iov;
        pyh_rconn *rc = rc_get(r, d, attempt > 0, &reused, &status);
        if (!rc)
            return status;
        iov.iov_base = q;
        iov.iov_len = qlen;
        if (rc_write(rc, &iov, 1, timeout) != APR_SUCCESS) {
            rc_close(rc);
            if (reused || attempt == 0)
                continue;
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "PYH0072: could not send the request to daemon "
                          "group '%s'; answering 502",
                          d->name);
            return HTTP_BAD_GATEWAY;
        }
        status = relay_response(r, req, d, rc, &reusable, &retry);
        if (reusable)
            rc_put(d, rc);
        else
            rc_close(rc);
        /* Only a request the daemon never read is sent again: a goodbye
         * from a recycling process or EOF on a pooled connection. */
        if (!retry)
            return status;
    }
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                  "PYH0072: daemon group '%s' keeps closing connections; "
                  "answering 502",
                  d->name);
    return HTTP_BAD_GATEWAY;
}

/* ==== daemon side ========================================================== */

pyh_dconn *pyh_dconn_new(int fd)
{
    pyh_dconn *dc = malloc(sizeof(*dc));
    if (!dc)
        return NULL;
    /* Everything but the read buffer, which is written before it is read. */
    memset(dc, 0, offsetof(pyh_dconn, rbuf));
    dc->fd = fd;
    return dc;
}

void pyh_dconn_free(pyh_dconn *dc)
{
    close(dc->fd);
    free(dc->wbuf);
    free(dc);
}

void pyh_dconn_idle(pyh_dconn *dc)
{
    if (dc->wcap > PYH_DCONN_WBUF && !dc->wlen) {
        free(dc->wbuf);
        dc->wbuf = NULL;
        dc->wcap = 0;
    }
}

int pyh_dconn_flush(pyh_dconn *dc)
{
    apr_size_t off = 0;
    while (off < dc->wlen) {
        ssize_t w = write(dc->fd, dc->wbuf + off, dc->wlen - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            dc->broken = 1;
            dc->wlen = 0;
            return -1;
        }
        off += (apr_size_t)w;
    }
    dc->wlen = 0;
    return 0;
}

/* Makes room for `need` more bytes in the write buffer, growing it up to
 * PYH_RELAY_CHUNK; -1 when they do not fit (or no memory). */
static int dconn_reserve(pyh_dconn *dc, apr_size_t need)
{
    apr_size_t cap;
    char *grown;
    if (dc->wlen + need <= dc->wcap)
        return 0;
    if (dc->wlen + need > PYH_RELAY_CHUNK)
        return -1;
    cap = dc->wcap ? dc->wcap : PYH_DCONN_WBUF;
    while (cap < dc->wlen + need)
        cap *= 2;
    if (cap > PYH_RELAY_CHUNK)
        cap = PYH_RELAY_CHUNK;
    if (!(grown = realloc(dc->wbuf, cap)))
        return -1;
    dc->wbuf = grown;
    dc->wcap = cap;
    return 0;
}

/* Writes one frame unbuffered (the write buffer must be empty). */
static int dconn_write_frame(pyh_dconn *dc, unsigned char *hdr,
                             const void *data, apr_size_t len)
{
    struct iovec iov[2];
    apr_size_t done = 0, total = PYH_FRAME_HDR + len;
    iov[0].iov_base = hdr;
    iov[0].iov_len = PYH_FRAME_HDR;
    iov[1].iov_base = (void *)data;
    iov[1].iov_len = len;
    while (done < total) {
        ssize_t w = writev(dc->fd, iov, 2);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            dc->broken = 1;
            return -1;
        }
        done += (apr_size_t)w;
        if (done >= PYH_FRAME_HDR) {
            iov[0].iov_len = 0;
            iov[1].iov_base = (char *)data + (done - PYH_FRAME_HDR);
            iov[1].iov_len = total - done;
        }
        else {
            iov[0].iov_base = hdr + done;
            iov[0].iov_len = PYH_FRAME_HDR - done;
        }
    }
    return 0;
}

/* Frames are gathered in the write buffer until a flush or until it is
 * full; one too large for it is written straight after the ones before. */
int pyh_dconn_frame(pyh_dconn *dc, int type, const void *data, apr_size_t len)
{
    unsigned char hdr[PYH_FRAME_HDR] = {0};
    uint32_t l = (uint32_t)len;
    if (dc->broken)
        return -1;
    hdr[0] = (unsigned char)type;
    memcpy(hdr + 4, &l, 4);
    if (dconn_reserve(dc, PYH_FRAME_HDR + len) < 0) {
        if (pyh_dconn_flush(dc) < 0)
            return -1;
        if (dconn_reserve(dc, PYH_FRAME_HDR + len) < 0)
            return dconn_write_frame(dc, hdr, data, len);
    }
    memcpy(dc->wbuf + dc->wlen, hdr, PYH_FRAME_HDR);
    if (len)
        memcpy(dc->wbuf + dc->wlen + PYH_FRAME_HDR, data, len);
    dc->wlen += PYH_FRAME_HDR + len;
    return 0;
}

int pyh_dconn_frame_fd(pyh_dconn *dc, int type, const void *data,
                       apr_size_t len, int fd)
{
    unsigned char hdr[PYH_FRAME_HDR] = {0};
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } ctl;
    uint32_t l = (uint32_t)len;
    struct iovec iov[2];
    struct msghdr msg;
    struct cmsghdr *c;
    ssize_t w;

    /* The frames before it go first: the Apache child turns them into
     * buckets ahead of the file's. */
    if (dc->broken || pyh_dconn_flush(dc) < 0)
        return -1;
    hdr[0] = (unsigned char)type;
    memcpy(hdr + 4, &l, 4);
    iov[0].iov_base = hdr;
    iov[0].iov_len = PYH_FRAME_HDR;
    iov[1].iov_base = (void *)data;
    iov[1].iov_len = len;
    memset(&msg, 0, sizeof(msg));
    memset(&ctl, 0, sizeof(ctl));
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;
    msg.msg_control = ctl.space;
    msg.msg_controllen = sizeof(ctl.space);
    c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    do
        w = sendmsg(dc->fd, &msg, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    if (w < 0) {
        /* The peer is gone; anything else (ENOMEM, ETOOMANYREFS) left
         * the stream untouched, and the bytes can still go as frames. */
        if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN) {
            dc->broken = 1;
            return -1;
        }
        return 1;
    }
    /* The descriptor went with the first byte; the rest, if a signal cut
     * the write short, follows as plain bytes. */
    if ((apr_size_t)w < PYH_FRAME_HDR + len) {
        apr_size_t done = (apr_size_t)w;
        char whole[PYH_FRAME_HDR + sizeof(pyh_p_fixed)];
        if (len > sizeof(pyh_p_fixed)) {
            dc->broken = 1;
            return -1;
        }
        memcpy(whole, hdr, PYH_FRAME_HDR);
        memcpy(whole + PYH_FRAME_HDR, data, len);
        while (done < PYH_FRAME_HDR + len) {
            w = write(dc->fd, whole + done, PYH_FRAME_HDR + len - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                dc->broken = 1;
                return -1;
            }
            done += (apr_size_t)w;
        }
    }
    return 0;
}

/* Reads exactly n bytes. Small reads go through the read buffer, which
 * may take the start of what follows; a read of at least its size goes
 * straight to dest once the buffer is empty, so never past the frame. */
int pyh_dconn_read(pyh_dconn *dc, void *dest, apr_size_t n)
{
    char *d = dest;
    while (n) {
        apr_size_t have = relay_take(dc->rbuf, &dc->rpos, dc->rlen, d, n);
        ssize_t got;
        if (have) {
            d += have;
            n -= have;
            continue;
        }
        if (n >= PYH_DCONN_RBUF)
            got = read(dc->fd, d, n);
        else
            got = read(dc->fd, dc->rbuf, PYH_DCONN_RBUF);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            dc->broken = 1;
            return -1;
        }
        if (n >= PYH_DCONN_RBUF) {
            d += got;
            n -= (apr_size_t)got;
        }
        else {
            dc->rpos = 0;
            dc->rlen = (apr_size_t)got;
        }
    }
    return 0;
}

typedef struct {
    pyh_dconn *dc;
    int headers_sent, ended;
} relay_ctx;

/* A file bucket of a regular file goes as its descriptor (a P frame):
 * the Apache child sends the file itself. 0: sent; -1: the connection
 * broke; 1: send its bytes instead. */
static int relay_pass_file(pyh_dconn *dc, apr_bucket *b)
{
    apr_bucket_file *fb = b->data;
    apr_os_file_t fd;
    struct stat st;
    pyh_p_fixed p;

    if (b->length == (apr_size_t)-1 || !b->length
        || apr_os_file_get(&fd, fb->fd) != APR_SUCCESS
        || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return 1;
    p.offset = b->start;
    p.length = (int64_t)b->length;
    return pyh_dconn_frame_fd(dc, PYH_F_FILE, &p, sizeof(p), fd);
}

static int relay_send_headers(request_rec *r, relay_ctx *ctx)
{
    const apr_array_header_t *arr = apr_table_elts(r->headers_out);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    apr_size_t n = sizeof(pyh_h_fixed) + rec_size(r->status_line)
                   + rec_size(r->content_type);
    pyh_h_fixed fx;
    const char *cl = NULL;
    char *buf, *p;
    int i;

    for (i = 0; i < arr->nelts; i++) {
        if (!e[i].key || !e[i].val)
            continue;
        if (!strcasecmp(e[i].key, "Content-Length"))
            cl = e[i].val;
        else
            n += rec_size(e[i].key) + rec_size(e[i].val);
    }
    fx.status = r->status;
    fx.close_connection = r->connection->keepalive == AP_CONN_CLOSE;
    fx.content_length = cl ? apr_atoi64(cl) : -1;
    p = buf = apr_palloc(r->pool, n);
    memcpy(p, &fx, sizeof(fx));
    p += sizeof(fx);
    p = rec_put(p, PYH_R_STATUS_LINE, r->status_line);
    p = rec_put(p, PYH_R_CONTENT_TYPE, r->content_type);
    for (i = 0; i < arr->nelts; i++) {
        if (!e[i].key || !e[i].val || !strcasecmp(e[i].key, "Content-Length"))
            continue;
        p = rec_put(p, PYH_R_HEADER_NAME, e[i].key);
        p = rec_put(p, PYH_R_HEADER_VALUE, e[i].val);
    }
    ctx->headers_sent = 1;
    return pyh_dconn_frame(ctx->dc, PYH_F_HEADERS, buf, n);
}

/* The daemon request's only output filter: buckets become frames. */
static apr_status_t relay_out(ap_filter_t *f, apr_bucket_brigade *bb)
{
    relay_ctx *ctx = f->ctx;
    request_rec *r = f->r;
    apr_bucket *b;
    int rc = 0;

    for (b = APR_BRIGADE_FIRST(bb); rc == 0 && b != APR_BRIGADE_SENTINEL(bb);
         b = APR_BUCKET_NEXT(b)) {
        if (ctx->ended)
            break;
        if (AP_BUCKET_IS_ERROR(b)) {
            rc = pyh_dconn_frame(ctx->dc, PYH_F_ABORT, NULL, 0);
            ctx->ended = 1;
            continue;
        }
        if (!ctx->headers_sent && (rc = relay_send_headers(r, ctx)) < 0)
            break;
        if (APR_BUCKET_IS_EOS(b)) {
            rc = pyh_dconn_frame(ctx->dc, PYH_F_END, NULL, 0);
            ctx->ended = 1;
        }
        else if (APR_BUCKET_IS_FLUSH(b)
                 && APR_BUCKET_NEXT(b) != APR_BRIGADE_SENTINEL(bb)
                 && APR_BUCKET_IS_EOS(APR_BUCKET_NEXT(b))) {
            /* The end flushes anyway. Without a pass of its own the Apache
             * child passes a response held whole (a file) in one brigade
             * that ends in EOS, which its byterange filter needs to answer
             * a Range request, as in embedded mode. */
        }
        else if (APR_BUCKET_IS_FLUSH(b)) {
            rc = pyh_dconn_frame(ctx->dc, PYH_F_FLUSH, NULL, 0);
            if (rc == 0)
                rc = pyh_dconn_flush(ctx->dc);
        }
        else if (APR_BUCKET_IS_FILE(b)
                 && (rc = relay_pass_file(ctx->dc, b)) <= 0) {
            /* passed as a descriptor, or the connection broke (rc < 0) */
        }
        else if (!APR_BUCKET_IS_METADATA(b)) {
            const char *data;
            apr_size_t len;
            rc = 0;
            if (apr_bucket_read(b, &data, &len, APR_BLOCK_READ) != APR_SUCCESS)
                rc = -1;
            else if (len)
                rc = pyh_dconn_frame(ctx->dc, PYH_F_DATA, data, len);
        }
    }
    if (rc == 0 && ctx->ended)
        rc = pyh_dconn_flush(ctx->dc);
    if (rc < 0) {
        r->connection->aborted = 1;
        return APR_EPIPE;
    }
    return APR_SUCCESS;
}

int pyh_relay_interim(request_rec *r, const apr_table_t *headers)
{
    relay_ctx *ctx = r->output_filters->ctx;
    apr_size_t n = rec_table_size(headers);
    char *buf;
    if (ctx->headers_sent || !n)
        return 0; /* a hint after the start is dropped, as embedded */
    buf = apr_palloc(r->pool, n);
    rec_put_table(buf, headers, PYH_R_HEADER_NAME);
    if (pyh_dconn_frame(ctx->dc, PYH_F_INTERIM, buf, n) < 0
        || pyh_dconn_flush(ctx->dc) < 0) {
        r->connection->aborted = 1;
        return -1;
    }
    return 0;
}

/* The daemon request's input filter: asks the Apache child for body. */
static apr_status_t relay_in(ap_filter_t *f, apr_bucket_brigade *bb,
                             ap_input_mode_t mode, apr_read_type_e block,
                             apr_off_t readbytes)
{
    relay_ctx *ctx = f->ctx;
    pyh_dconn *dc = ctx->dc;
    apr_bucket_alloc_t *ba = f->c->bucket_alloc;
    unsigned char hdr[PYH_FRAME_HDR];
    uint32_t want = readbytes > PYH_RELAY_CHUNK ? PYH_RELAY_CHUNK
                                                : (uint32_t)readbytes;
    uint32_t len;
    char *data;
    (void)mode;
    (void)block;

    if (pyh_dconn_frame(dc, PYH_F_READ, &want, sizeof(want)) < 0
        || pyh_dconn_flush(dc) < 0 || pyh_dconn_read(dc, hdr, sizeof(hdr)) < 0)
        return APR_ECONNABORTED;
    memcpy(&len, hdr + 4, 4);
    if (hdr[0] == PYH_F_BODY_ERROR && len == 4) {
        int32_t code;
        if (pyh_dconn_read(dc, &code, 4) < 0)
            return APR_ECONNABORTED;
        return (apr_status_t)code;
    }
    if (hdr[0] != PYH_F_BODY || len > want) {
        dc->broken = 1;
        return APR_EGENERAL;
    }
    if (!len) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(ba));
        return APR_SUCCESS;
    }
    data = apr_bucket_alloc(len, ba);
    if (pyh_dconn_read(dc, data, len) < 0) {
        apr_bucket_free(data);
        return APR_ECONNABORTED;
    }
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_heap_create(data, len,
                                                       apr_bucket_free, ba));
    return APR_SUCCESS;
}

static ap_filter_rec_t relay_out_rec = {
    "PYHOST_RELAY_OUT", {NULL}, NULL, NULL, NULL, AP_FTYPE_NETWORK, 0, 0
};
static ap_filter_rec_t relay_in_rec = {
    "PYHOST_RELAY_IN", {NULL}, NULL, NULL, NULL, AP_FTYPE_NETWORK, 0, 0
};

static server_rec *relay_server(int index)
{
    server_rec *s = ap_server_conf;
    while (index-- > 0 && s->next)
        s = s->next;
    return s;
}

static int relay_secret_ok(const unsigned char *got)
{
    unsigned diff = 0;
    apr_size_t i;
    for (i = 0; i < sizeof(pyh_relay_secret); i++)
        diff |= got[i] ^ pyh_relay_secret[i];
    return diff == 0;
}

/* Reads one Q frame into the pool; NULL on a broken or foreign frame. */
static char *relay_read_request(pyh_dconn *dc, apr_pool_t *p, uint32_t *len)
{
    unsigned char hdr[PYH_FRAME_HDR];
    char *payload;
    int type;
    if (pyh_dconn_read(dc, hdr, sizeof(hdr)) < 0)
        return NULL;
    if (pyh_wire_header(hdr, &type, len) < 0 || type != PYH_F_REQUEST
        || *len < sizeof(pyh_q_fixed)) {
        dc->broken = 1;
        return NULL;
    }
    payload = apr_palloc(p, *len);
    if (pyh_dconn_read(dc, payload, *len) < 0)
        return NULL;
    if (!relay_secret_ok((const unsigned char *)payload)) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, ap_server_conf,
                     "PYH0074: daemon process %d refused a request that did "
                     "not come from its own Apache",
                     (int)getpid());
        dc->broken = 1;
        return NULL;
    }
    return payload;
}

int pyh_relay_refuse(pyh_dconn *dc, int status)
{
    apr_pool_t *p;
    uint32_t len;
    int32_t st = status;
    int rc = -1;
    if (apr_pool_create(&p, NULL) != APR_SUCCESS)
        return -1;
    if (relay_read_request(dc, p, &len)
        && pyh_dconn_frame(dc, PYH_F_STATUS, &st, sizeof(st)) == 0
        && pyh_dconn_flush(dc) == 0)
        rc = 0;
    apr_pool_destroy(p);
    return rc;
}

/* Per worker thread: a long-lived pool holding the bucket allocator, and
 * a request pool under it cleared for every request. */
static PYH_THREAD_LOCAL apr_pool_t *relay_thread_pool, *relay_pool;
static PYH_THREAD_LOCAL apr_bucket_alloc_t *relay_ba;

/* A request_rec good for the WSGI adapter: pools, tables, the filters
 * above, and the fields wsgi.c, input.c and log.c read. */
static request_rec *relay_make_request(apr_pool_t *p, relay_ctx *ctx,
                                       const pyh_q_fixed *fx, pyh_request *req)
{
    conn_rec *c = apr_pcalloc(p, sizeof(*c));
    request_rec *r = apr_pcalloc(p, sizeof(*r));
    ap_filter_t *out = apr_pcalloc(p, sizeof(*out));
    ap_filter_t *in = apr_pcalloc(p, sizeof(*in));
    server_rec *s = relay_server(fx->server_index);
    const char *port = req->vars[PYH_K_REMOTE_PORT];

    c->pool = p;
    c->base_server = s;
    c->bucket_alloc = relay_ba;
    c->client_ip = (char *)(req->vars[PYH_K_REMOTE_ADDR]
                                ? req->vars[PYH_K_REMOTE_ADDR] : "-");
    c->local_ip = (char *)(req->vars[PYH_K_SERVER_ADDR]
                               ? req->vars[PYH_K_SERVER_ADDR] : "-");
    c->client_addr = apr_pcalloc(p, sizeof(*c->client_addr));
    c->client_addr->port = (apr_port_t)(port ? atoi(port) : 0);
    c->local_addr = apr_pcalloc(p, sizeof(*c->local_addr));
    /* the ASGI scope's server port (CGI's SERVER_PORT: the same unless a
     * ServerName names another) */
    c->local_addr->port = (apr_port_t)(req->vars[PYH_K_SERVER_PORT]
                                           ? atoi(req->vars[PYH_K_SERVER_PORT])
                                           : 0);
    c->notes = apr_table_make(p, 1);
    c->keepalive = AP_CONN_UNKNOWN;
    c->log = &s->log;
    c->conn_config = ap_create_conn_config(p);

    r->pool = p;
    r->connection = c;
    r->server = s;
    r->log = &s->log;
    r->request_time = fx->request_time;
    /* the Apache child's log id: a traceback here carries the same id */
    r->log_id = req->vars[PYH_K_MODWSGI_REQUEST_ID];
    r->useragent_ip = c->client_ip;
    r->useragent_addr = c->client_addr;
    r->method = req->vars[PYH_K_REQUEST_METHOD];
    r->protocol = (char *)(req->vars[PYH_K_SERVER_PROTOCOL]
                               ? req->vars[PYH_K_SERVER_PROTOCOL] : "HTTP/1.1");
    /* HTTP/1.0, HTTP/1.1, HTTP/2.0 (mod_http2): the ASGI scope's version */
    r->proto_num = !strncmp(r->protocol, "HTTP/", 5) && apr_isdigit(r->protocol[5])
                       ? HTTP_VERSION(r->protocol[5] - '0',
                                      r->protocol[6] == '.'
                                          ? atoi(r->protocol + 7) : 0)
                       : HTTP_VERSION(1, 1);
    r->header_only = (fx->flags & PYH_Q_HEADER_ONLY) != 0;
    r->status = HTTP_OK;
    r->headers_out = apr_table_make(p, 8);
    r->err_headers_out = apr_table_make(p, 1);
    r->notes = apr_table_make(p, 1);
    r->per_dir_config = s->lookup_defaults;
    r->request_config = ap_create_request_config(p);
    r->finfo.filetype = fx->script_mtime ? APR_REG : APR_NOFILE;
    r->finfo.mtime = fx->script_mtime;

    out->frec = &relay_out_rec;
    out->ctx = ctx;
    out->r = r;
    out->c = c;
    in->frec = &relay_in_rec;
    in->ctx = ctx;
    in->r = r;
    in->c = c;
    r->output_filters = r->proto_output_filters = out;
    r->input_filters = r->proto_input_filters = in;
    c->output_filters = out;
    c->input_filters = in;
    return r;
}

/* Once per worker thread: its pools, bucket allocator and the filters'
 * functions. */
static int relay_thread_init(void)
{
    if (relay_pool)
        return 0;
    if (apr_pool_create(&relay_thread_pool, NULL) != APR_SUCCESS
        || apr_pool_create(&relay_pool, relay_thread_pool) != APR_SUCCESS)
        return -1;
    relay_ba = apr_bucket_alloc_create(relay_thread_pool);
    relay_out_rec.filter_func.out_func = relay_out;
    relay_in_rec.filter_func.in_func = relay_in;
    return 0;
}

/* Reads a Q payload into *q and a new req; NULL on a malformed frame. */
static pyh_request *relay_parse_request(char *payload, uint32_t len,
                                        pyh_wire_q *q)
{
    pyh_request *req;
    const pyh_q_fixed *fx = &q->fx;

    q->headers_in = apr_table_make(relay_pool, 16);
    q->subprocess_env = apr_table_make(relay_pool, 16);
    if (pyh_wire_parse_q(payload, len, q) < 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, ap_server_conf,
                     "PYH0074: malformed request frame in daemon process %d",
                     (int)getpid());
        return NULL;
    }
    req = apr_pcalloc(relay_pool, sizeof(*req));
    memcpy(req->vars, q->vars, sizeof(req->vars));
    req->conf.callable_object = q->callable ? q->callable : "application";
    req->conf.application_group = "%{GLOBAL}";
    req->conf.process_group = pyh_this_daemon->name;
    req->conf.pass_authorization = (fx->flags & PYH_Q_PASS_AUTH) != 0;
    req->conf.chunked_request = (fx->flags & PYH_Q_CHUNKED) != 0;
    req->conf.script_reloading = (fx->flags & PYH_Q_RELOADING) != 0;
    req->conf.error_override = (fx->flags & PYH_Q_ERROR_OVERRIDE) != 0;
    req->conf.map_head_to_get = PYH_HEAD_OFF; /* decided by the child */
    req->app_group = q->app_group ? q->app_group : "";
    req->asgi = (fx->flags & PYH_Q_ASGI) != 0;
    if (req->asgi) /* none given: `application`, else `app` (interp.c) */
        req->conf.callable_object = q->callable;
    req->lifespan = (int)((fx->flags >> PYH_Q_LIFESPAN_SHIFT) & 3u);
    return req;
}

/* The daemon's request_rec for a parsed Q frame. */
static void relay_request_rec(relay_ctx *ctx, const pyh_q_fixed *fx,
                              pyh_request *req, const pyh_wire_q *q)
{
    request_rec *r = relay_make_request(relay_pool, ctx, fx, req);
    r->headers_in = q->headers_in;
    r->subprocess_env = q->subprocess_env;
    r->filename = (char *)q->filename;
    r->uri = (char *)q->uri;
    r->method = req->vars[PYH_K_REQUEST_METHOD];
    r->unparsed_uri = (char *)req->vars[PYH_K_REQUEST_URI];
    r->args = (char *)req->vars[PYH_K_QUERY_STRING];
    if (!r->uri)
        r->uri = r->unparsed_uri ? r->unparsed_uri : "/";
    req->r = r;
    req->script_name = req->vars[PYH_K_SCRIPT_NAME] ? req->vars[PYH_K_SCRIPT_NAME] : "";
    req->path_info = req->vars[PYH_K_PATH_INFO] ? req->vars[PYH_K_PATH_INFO] : "";
}

/* An ASGI app: this thread does the request's I/O over the relay as an
 * Apache worker does over the client's connection (asgi.c, DESIGN rule
 * 8), while the app runs on the process's event loop. The watchdog's
 * TimeoutError cannot reach a coroutine on another thread: the worker
 * ends the request itself at its deadline. Returns with the GIL
 * released and the interpreter left. */
static int relay_run_asgi(pyh_interp *in, pyh_request *req, PyObject *app)
{
    pyh_daemon *d = pyh_this_daemon;
    if (d->request_timeout)
        req->deadline = apr_time_now() + d->request_timeout;
    return pyh_asgi_handle(in, req, app, req->lifespan);
}

/* Runs the app for req in its interpreter; the handler's status. */
static int relay_run_app(pyh_request *req)
{
    request_rec *r = req->r;
    pyh_interp *in;
    PyObject *app;
    int status = OK;

    if (!(in = pyh_interp_acquire(req->app_group, r->server)))
        return HTTP_INTERNAL_SERVER_ERROR;
    req->interp = in;
    if (!req->asgi)
        pyh_daemon_busy(in);
    app = pyh_script_callable(in, r, r->filename, req->conf.callable_object,
                              req->conf.script_reloading, &status);
    pyh_daemon_loaded(app != NULL);
    if (app && req->asgi) {
        status = relay_run_asgi(in, req, app);
        pyh_interp_leave(in);
        return status;
    }
    if (app) {
        status = pyh_wsgi_handle(in, req, app);
        Py_DECREF(app);
    }
    /* A TimeoutError the watchdog raised too late must not fire in
     * this thread's next request. */
    PyThreadState_SetAsyncExc((unsigned long)pthread_self(), NULL);
    pyh_daemon_idle();
    pyh_interp_release(in);
    return status;
}

/* A response the app did not end: S with the status if nothing went
 * out yet and there is an error to tell, A (cut) otherwise. */
static void relay_finish(relay_ctx *ctx, int status)
{
    if (ctx->ended)
        return;
    if (ctx->headers_sent || status == OK)
        pyh_dconn_frame(ctx->dc, PYH_F_ABORT, NULL, 0);
    else {
        int32_t st = status;
        pyh_dconn_frame(ctx->dc, PYH_F_STATUS, &st, sizeof(st));
    }
    pyh_dconn_flush(ctx->dc);
}

int pyh_relay_serve(pyh_dconn *dc)
{
    relay_ctx ctx = {dc, 0, 0};
    pyh_request *req;
    pyh_wire_q q;
    char *payload;
    uint32_t len;

    if (relay_thread_init() < 0)
        return -1;
    apr_pool_clear(relay_pool);
    if (!(payload = relay_read_request(dc, relay_pool, &len))
        || !(req = relay_parse_request(payload, len, &q)))
        return -1;
    if (!(q.fx.flags & PYH_Q_IGNORE_ACTIVITY))
        pyh_daemon_active();
    relay_request_rec(&ctx, &q.fx, req, &q);
    req->relay_fd = dc->fd;
    relay_finish(&ctx, relay_run_app(req));
    /* Now, not at this thread's next request: what the request's pool
     * holds must not outlive it (a wsgi.file_wrapper bucket's own
     * descriptor would keep the file open, deleted or not, while the
     * thread waits). */
    apr_pool_clear(relay_pool);
    return dc->broken ? -1 : 0;
}
