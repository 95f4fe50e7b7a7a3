# Cython's view of module/asgi_api.h: the seam between mod_pyhost's
# asgi.c (Apache's worker thread) and _asgi.pyx (the event loop).
# Only what _asgi.pyx uses; keep in step with the header.
from cpython.object cimport PyObject

cdef extern from "asgi_api.h" nogil:
    int PYH_ASGI_API_VERSION
    const char *PYH_ASGI_CAPSULE
    unsigned PYH_ASGI_SEND
    unsigned PYH_ASGI_READ
    unsigned PYH_ASGI_DONE
    unsigned PYH_ASGI_FINISHED
    unsigned PYH_ASGI_WS_ACCEPT
    unsigned PYH_ASGI_WS_CLOSE
    unsigned PYH_ASGI_GONE

    ctypedef struct pyh_asgi_header:
        const char *name
        size_t name_len
        const char *value
        size_t value_len

    ctypedef struct pyh_asgi_xfer:
        int status
        const pyh_asgi_header *headers
        int nheaders
        const char *body
        size_t body_len
        int more_body
        int early_hint
        int file_kind
        const char *file_path
        int file_fd
        long long file_offset
        long long file_count
        char *error
        int done_status
        int send_failed
        const char *rbuf
        size_t read_len
        int read_eos
        int read_failed
        PyObject *owner
        unsigned taken
        pyh_asgi_xfer *next
        pyh_asgi_xfer *taken_next
        const char *ws_subprotocol
        size_t ws_subprotocol_len
        int ws_binary
        int ws_code
        int ws_type

    ctypedef struct pyh_asgi_scope_in:
        const char *method
        const char *http_version
        const char *scheme
        const char *path
        size_t path_len
        const char *raw_path
        size_t raw_path_len
        const char *query
        size_t query_len
        const char *root_path
        size_t root_path_len
        const char *client_host
        int client_port
        const char *server_host
        int server_port
        const pyh_asgi_header *headers
        int nheaders
        int has_body
        int websocket
        int tls
        const char *tls_protocol
        const char *tls_cipher
        const char *tls_server_cert
        const char *tls_client_cert
        const char *tls_client_verify
        const char *tls_client_dn

    ctypedef struct pyh_asgi_host:
        int version
        void *ctx
        int wake_fd
        int (*post)(pyh_asgi_xfer *x, unsigned work) noexcept nogil
        pyh_asgi_xfer *(*take_completed)(void *ctx) noexcept nogil
        void (*release)(pyh_asgi_xfer *x) noexcept nogil
        void (*log)(void *ctx, int level, const char *msg) noexcept nogil
        void (*loop_lag)(void *ctx, long long us) noexcept nogil
        void (*lifespan_state)(void *ctx, const char *name, int state) noexcept nogil

    ctypedef struct pyh_asgi_bridge:
        int version
        object (*loop_start)(const pyh_asgi_host *host, int loop_kind,
                              const char *group)
        int (*lifespan_startup)(object loop, object app, int mode,
                                const char *name, double timeout) except -1
        int (*submit)(object loop, object app, int lifespan, const char *name,
                      const pyh_asgi_scope_in *sc, pyh_asgi_xfer *x) except -1
        int (*loop_stop)(object loop, double timeout) except -1
