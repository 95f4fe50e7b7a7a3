/* relay.h - the wire between an Apache child and a daemon process, and
 * the daemon-side state that daemon.c (processes, threads) and relay.c
 * (requests) share.
 *
 * A connection is a UNIX stream socket that the Apache child keeps open
 * and reuses. Every message is a frame: an 8-byte header (type, flags,
 * payload length) and the payload. Both ends run on one machine and one
 * build, so integers are in host order.
 *
 *   Apache -> daemon   Q  request: secret, fixed fields, then records
 *                      B  request body bytes (empty: end of body)
 *                      X  request body read failed: apr_status_t
 *   daemon -> Apache   H  status and headers     D  body bytes
 *                      F  flush                   E  end of response
 *                      A  abort (cut the client connection)
 *                      S  no response: the handler returns this status
 *                      R  send me at most N body bytes
 *                      G  goodbye: the daemon closes this idle connection
 *                         without having read anything after it
 *                      I  interim: a 103's headers (ASGI early hint),
 *                         before H
 *                      P  a file: offset and length; its open descriptor
 *                         rides on the frame's first byte (SCM_RIGHTS), so
 *                         a wsgi.file_wrapper download costs the daemon no
 *                         copy and Apache sends it as a file bucket
 */
#ifndef PYHOST_RELAY_H
#define PYHOST_RELAY_H

#include "pyhost.h"

#include <stdint.h>

#define PYH_FRAME_HDR 8
#define PYH_FRAME_MAX (64 * 1024 * 1024) /* larger is a protocol error */
#define PYH_RELAY_CHUNK 65536

enum {
    PYH_F_REQUEST = 'Q', PYH_F_BODY = 'B', PYH_F_BODY_ERROR = 'X',
    PYH_F_HEADERS = 'H', PYH_F_DATA = 'D', PYH_F_FLUSH = 'F', PYH_F_END = 'E',
    PYH_F_ABORT = 'A', PYH_F_STATUS = 'S', PYH_F_READ = 'R', PYH_F_GOODBYE = 'G',
    PYH_F_INTERIM = 'I', PYH_F_FILE = 'P'
};

/* Record kinds inside Q and H payloads: u32 length, u8 kind, bytes, NUL. */
enum {
    PYH_R_VAR = 0,           /* + enum pyh_key: 0 .. PYH_K_COUNT-1 */
    PYH_R_HEADER_NAME = 100, PYH_R_HEADER_VALUE,
    PYH_R_ENV_NAME, PYH_R_ENV_VALUE,
    PYH_R_FILENAME, PYH_R_CALLABLE, PYH_R_APP_GROUP, PYH_R_URI,
    PYH_R_STATUS_LINE, PYH_R_CONTENT_TYPE
};

/* Q flags */
#define PYH_Q_HEADER_ONLY 1u
#define PYH_Q_RELOADING 2u
#define PYH_Q_ERROR_OVERRIDE 4u
#define PYH_Q_PASS_AUTH 8u
#define PYH_Q_CHUNKED 16u
#define PYH_Q_ASGI 32u          /* an ASGI mount: the daemon runs it on its
                                   event loop, lifespan mode in the bits */
#define PYH_Q_LIFESPAN_SHIFT 6  /* 2 bits: PYH_LIFESPAN_* */
#define PYH_Q_IGNORE_ACTIVITY 256u /* WSGIIgnoreActivity */

typedef struct {
    unsigned char secret[16];
    uint32_t flags;
    int32_t server_index;
    int64_t script_mtime;   /* apr_time_t the Apache child saw */
    int64_t request_time;   /* r->request_time */
} pyh_q_fixed;

/* A P payload: the bytes [offset, offset + length) of the passed file. */
typedef struct {
    int64_t offset;
    int64_t length;
} pyh_p_fixed;

typedef struct {
    int32_t status;
    uint32_t close_connection;
    int64_t content_length; /* -1: none */
} pyh_h_fixed;

/* ---- decoding (wire.c): pure functions over memory, also linked into
 * the fuzz targets under tests/fuzz; 0 means well formed, -1 malformed. */

/* A frame header's type and payload length; -1 when it is too long. */
int pyh_wire_header(const unsigned char *hdr, int *type, uint32_t *len);

/* A Q payload. The caller makes the two tables; the strings point into
 * the payload, which the records' NULs are part of. */
typedef struct {
    pyh_q_fixed fx;
    const char *vars[PYH_K_COUNT];  /* enum pyh_key; NULL: absent */
    const char *filename, *callable, *app_group, *uri; /* NULL: absent */
    apr_table_t *headers_in, *subprocess_env;        /* records added */
} pyh_wire_q;
int pyh_wire_parse_q(const char *payload, apr_size_t len, pyh_wire_q *q);

/* An H payload; headers is the caller's table (r->headers_out). */
typedef struct {
    pyh_h_fixed fx;
    const char *status_line, *content_type; /* NULL: absent */
    apr_table_t *headers;
} pyh_wire_h;
int pyh_wire_parse_h(const char *payload, apr_size_t len, pyh_wire_h *h);
/* An I payload: header records only, added to the caller's table. */
int pyh_wire_parse_i(const char *payload, apr_size_t len,
                     apr_table_t *headers);
/* A P payload: 0 when offset >= 0 and length > 0. */
int pyh_wire_parse_p(const char *payload, apr_size_t len, pyh_p_fixed *p);
/* An S payload's status. */
int pyh_wire_parse_s(const char *payload, apr_size_t len, int *status);

/* What the Apache child has seen of one response (zeroed at its start),
 * and whether the next frame, known by its header, may come now. */
typedef struct {
    int headers, frames, body_asked;
} pyh_wire_resp;
enum { PYH_WIRE_BAD = -1, PYH_WIRE_OK = 0, PYH_WIRE_RETRY = 1 };
/* PYH_WIRE_RETRY: a goodbye before anything else, the request unread. */
int pyh_wire_resp_next(pyh_wire_resp *st, int type, uint32_t len);

/* A daemon connection's buffers are sized for the common small request:
 * reads of at least PYH_DCONN_RBUF bytes (large frames) bypass the read
 * buffer, and the write buffer starts at PYH_DCONN_WBUF, doubles up to
 * PYH_RELAY_CHUNK only while a request's frames need it, and is given back
 * when the connection goes idle. */
#define PYH_DCONN_RBUF 8192
#define PYH_DCONN_WBUF 4096

/* A connection in the daemon. */
typedef struct pyh_dconn {
    int fd;
    int state;                  /* PYH_DC_* */
    apr_size_t rpos, rlen;      /* unread bytes in rbuf */
    char *wbuf;                 /* frames waiting to be written; NULL: none yet */
    apr_size_t wlen, wcap;
    int broken;                 /* an I/O error: close after this request */
    apr_time_t queued;          /* when it became readable */
    apr_time_t retire_at;       /* after this, goodbye after a request */
    int fresh;                  /* accepted, no request seen yet */
    struct pyh_dconn *next;     /* ready queue */
    struct pyh_dconn *all_next, *all_prev;
    char rbuf[PYH_DCONN_RBUF];
} pyh_dconn;

enum { PYH_DC_IDLE, PYH_DC_QUEUED, PYH_DC_BUSY };

/* A daemon connection on fd (NULL: no memory), and its end (closes fd). */
pyh_dconn *pyh_dconn_new(int fd);
void pyh_dconn_free(pyh_dconn *dc);
/* Between requests: gives back a write buffer a large response grew. */
void pyh_dconn_idle(pyh_dconn *dc);

/* Low-level I/O on a daemon connection (relay.c). */
int pyh_dconn_read(pyh_dconn *dc, void *dest, apr_size_t n);
int pyh_dconn_frame(pyh_dconn *dc, int type, const void *data, apr_size_t len);
int pyh_dconn_flush(pyh_dconn *dc);
/* Flushes, then writes a frame with descriptor fd attached (SCM_RIGHTS).
 * 0: sent; -1: the connection broke; 1: the descriptor could not be
 * sent and nothing was written (the caller sends the bytes instead). */
int pyh_dconn_frame_fd(pyh_dconn *dc, int type, const void *data,
                       apr_size_t len, int fd);
/* Reads a Q frame and answers it with S `status` without running it. */
int pyh_relay_refuse(pyh_dconn *dc, int status);

/* Bookkeeping the watchdog reads (daemon.c). */
void pyh_daemon_busy(pyh_interp *in);
void pyh_daemon_idle(void);
void pyh_daemon_loaded(int ok);
/* The request this thread serves counts as activity (inactivity-timeout);
 * not called for WSGIIgnoreActivity requests. */
void pyh_daemon_active(void);

#endif
