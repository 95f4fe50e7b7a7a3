/* asgi_api.h - the seam between module/asgi.c (Apache's side: the worker
 * thread, brigades, filters) and python/pyhost/_asgi.pyx (the loop side:
 * asyncio, scope and message objects). Plain C types and PyObject only, so
 * the Cython extension builds without Apache's headers;
 * python/pyhost/includes/asgi.pxd declares the same for Cython. Bump
 * PYH_ASGI_API_VERSION with any change here. */
#ifndef PYH_ASGI_API_H
#define PYH_ASGI_API_H

#include <Python.h>
#include <stddef.h>

#define PYH_ASGI_API_VERSION 3
#define PYH_ASGI_CAPSULE "pyhost._asgi._C_API"

/* Work the loop posts to the worker thread (bits). */
#define PYH_ASGI_SEND 1u     /* response start (status > 0) and/or a body */
#define PYH_ASGI_READ 2u     /* read the next piece of the request body */
#define PYH_ASGI_DONE 4u     /* the app is finished: end the request */
/* Completions the worker posts back: SEND and READ as above, plus */
#define PYH_ASGI_FINISHED 8u /* the worker has left the request (response
                                complete or client gone): post() fails now */
/* WebSocket work (scope type "websocket"; asgi.c's WebSocket section).
 * Both complete as SEND. After WS_ACCEPT, SEND carries one message
 * (ws_binary, body) and READ asks for the next message or the end. */
#define PYH_ASGI_WS_ACCEPT 16u /* websocket.accept: the 101, then frames */
#define PYH_ASGI_WS_CLOSE 32u  /* websocket.close: ws_code, reason in body */
#define PYH_ASGI_GONE 64u    /* the client went away while the app ran;
                                posted with a reference on the xfer, which
                                the loop releases once it has handled it
                                (owner is NULL if the request object died) */

typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} pyh_asgi_header;

/* One request, shared by the worker thread and the loop. Each field is
 * written by one side before a post (loop -> worker) or a completion
 * (worker -> loop) and read by the other after it; the post's mutex and
 * the completion queue's lock order the accesses. */
typedef struct pyh_asgi_xfer {
    /* loop -> worker */
    int status;                       /* SEND: > 0 carries the start */
    const pyh_asgi_header *headers;   /* SEND with status: the headers */
    int nheaders;
    const char *body;                 /* SEND: body bytes (may be 0) */
    size_t body_len;
    int more_body;
    /* SEND of a file instead of body (http.response.pathsend/zerocopysend):
     * file_kind 0 none, 1 file_path (opened by the worker), 2 file_fd (the
     * app's, dup'ed by the worker); from file_offset, file_count bytes
     * (-1: to the end) */
    int early_hint;     /* SEND: a 103 with headers (Link), no body */
    int file_kind;
    const char *file_path;
    int file_fd;
    long long file_offset;
    long long file_count;
    char *error;        /* DONE: malloc'd text to log, the worker frees it */
    int done_status;    /* DONE: > 0: answer with this status, no log */
    /* worker -> loop */
    int send_failed;    /* SEND: the client is gone (or the write failed) */
    const char *rbuf;   /* READ: the piece read, valid until the next READ */
    size_t read_len;
    int read_eos;       /* READ: that was the end of the body */
    int read_failed;    /* READ: the body could not be read */
    /* the loop side's request object; it holds one reference per
     * posted SEND or READ until their completion is handled */
    PyObject *owner;
    /* completion queue (asgi.c's lock) */
    unsigned completed;  /* bits waiting in the queue */
    unsigned taken;      /* bits take_completed handed to the loop */
    struct pyh_asgi_xfer *next;
    struct pyh_asgi_xfer *taken_next; /* the list take_completed returned */
    /* WebSocket (loop -> worker) */
    const char *ws_subprotocol;  /* WS_ACCEPT: the chosen one, or NULL */
    size_t ws_subprotocol_len;
    int ws_binary;               /* SEND: a binary message, not text */
    /* both ways: WS_CLOSE: the app's code; READ (worker -> loop) and once
     * the worker has left: the code of websocket.disconnect */
    int ws_code;
    int ws_type;                 /* READ: 1 text, 2 binary, 0 disconnect */
} pyh_asgi_xfer;

/* The request as the worker thread collected it for the scope. */
typedef struct {
    const char *method, *http_version, *scheme;
    const char *path;       /* decoded, includes root_path */
    size_t path_len;
    const char *raw_path;
    size_t raw_path_len;
    const char *query;
    size_t query_len;
    const char *root_path;
    size_t root_path_len;
    const char *client_host;
    int client_port;
    const char *server_host;
    int server_port;
    const pyh_asgi_header *headers; /* names lowercased, request order */
    int nheaders;
    int has_body;           /* 0: receive() needs no read at all */
    int websocket;          /* a valid WebSocket upgrade: scope "websocket" */
    /* TLS from mod_ssl (the "tls" extension); tls 0: not over TLS, or no
     * mod_ssl to ask. Strings may be NULL. */
    int tls;
    const char *tls_protocol;      /* SSL_PROTOCOL: "TLSv1.3" */
    const char *tls_cipher;        /* SSL_CIPHER (OpenSSL's name) */
    const char *tls_server_cert;   /* PEM */
    const char *tls_client_cert;   /* PEM, NULL or "" without one */
    const char *tls_client_verify; /* SSL_CLIENT_VERIFY: NONE, SUCCESS, FAILED:why */
    const char *tls_client_dn;     /* SSL_CLIENT_S_DN (RFC 2253) */
} pyh_asgi_scope_in;

/* What asgi.c gives the loop side. post, take_completed and release need
 * no GIL. */
typedef struct {
    int version;
    void *ctx;    /* the interpreter's loop state in asgi.c */
    int wake_fd;  /* readable when completions are queued */
    /* 0, or -1 when the worker has left (the work was not posted) */
    int (*post)(pyh_asgi_xfer *x, unsigned work);
    /* detaches the queued xfers; each one's `taken` holds its bits */
    pyh_asgi_xfer *(*take_completed)(void *ctx);
    void (*release)(pyh_asgi_xfer *x);
    /* one error-log entry (syslog level) for what has no request left */
    void (*log)(void *ctx, int level, const char *msg);
    /* for the metrics, with the GIL: how late (microseconds) the loop's
     * periodic callback ran; an app's lifespan (name as given to
     * lifespan_startup / submit) entered state: 1 starting, 2 ready,
     * 3 failed, 4 stopped */
    void (*loop_lag)(void *ctx, long long us);
    void (*lifespan_state)(void *ctx, const char *name, int state);
} pyh_asgi_host;

/* What _asgi.pyx gives asgi.c; called with the GIL held. Failures
 * return -1 (NULL) with a Python exception set. */
typedef struct {
    int version;
    /* starts the interpreter's loop thread; loop_kind: PYH_LOOP_*; group:
     * the application group ("" for the main interpreter) */
    PyObject *(*loop_start)(const pyh_asgi_host *host, int loop_kind,
                            const char *group);
    /* runs app's lifespan startup, waiting at most timeout seconds with
     * the GIL released; 0 served (with or without lifespan), 1 failed
     * (logged) */
    int (*lifespan_startup)(PyObject *loop, PyObject *app, int mode,
                            const char *name, double timeout);
    /* builds the scope and schedules the app on the loop; 0, or an HTTP
     * status to answer without running the app */
    int (*submit)(PyObject *loop, PyObject *app, int lifespan,
                  const char *name, const pyh_asgi_scope_in *sc,
                  pyh_asgi_xfer *x);
    /* lifespan shutdown for every app, then the loop thread ends; each
     * bounded by timeout seconds */
    int (*loop_stop)(PyObject *loop, double timeout);
} pyh_asgi_bridge;

#endif
