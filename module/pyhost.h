/* pyhost.h - the seams between mod_pyhost's files: configuration records,
 * the per-interpreter state, the per-request state, and the functions each
 * file exports to the others. Everything exported is prefixed pyh_. */
#ifndef PYHOST_H
#define PYHOST_H

#include "compat.h"

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "apr_hash.h"
#include "apr_lib.h"
#include "apr_thread_mutex.h"
#include "apr_portable.h"
#include "util_filter.h"

#define PYH_VERSION "0.1.0"
#define PYH_UNSET (-1)

/* WSGIMapHEADToGET values */
#define PYH_HEAD_OFF 0
#define PYH_HEAD_ON 1
#define PYH_HEAD_AUTO 2

extern module AP_MODULE_DECLARE_DATA pyhost_module;
#ifndef PYH_MODULE_RECORD_FILE
APLOG_USE_MODULE(pyhost);
#endif

/* ---- configuration (config.c) ------------------------------------------ */

/* WSGIAuthUserScript, WSGIAuthGroupScript, WSGIAccessScript (auth.c) */
typedef struct pyh_auth_script {
    const char *path;
    const char *application_group;
} pyh_auth_script;

/* WSGIHandlerScript name path [options] (dispatch.c): requests whose
 * handler is `name` run `path`'s handle_request as a WSGI app. */
typedef struct pyh_handler_script {
    const char *path;
    const char *process_group;     /* NULL: the location's */
    const char *application_group; /* NULL: the location's */
    int pass_authorization;        /* PYH_UNSET: the location's */
} pyh_handler_script;

/* Per-directory settings; also hold WSGIScriptAlias inline options. */
typedef struct {
    const char *application_group; /* NULL: unset; "%{GLOBAL}" etc. */
    const char *callable_object;
    const char *process_group;
    int pass_authorization;
    int chunked_request;
    int script_reloading;
    int map_head_to_get;
    int error_override;
    /* auth.c: NULL unset */
    const pyh_auth_script *auth_user_script, *auth_group_script,
        *access_script;
    int group_authoritative;
    /* directives_compat.c: NULL unset */
    apr_array_header_t *trusted_proxy_headers; /* int: header index */
    apr_array_header_t *trusted_proxies;       /* apr_ipsubnet_t * */
    /* dispatch.c: NULL unset */
    const pyh_auth_script *dispatch_script;    /* WSGIDispatchScript */
    apr_hash_t *handler_scripts; /* WSGIHandlerScript: name -> pyh_handler_script */
    apr_array_header_t *restrict_process; /* WSGIRestrictProcess: const
                                             char * group names, "" for
                                             %{GLOBAL} */
    int pass_apache_request;     /* WSGIPassApacheRequest: environ's
                                    apache.request_rec (embedded mode) */
    int ignore_activity;         /* WSGIIgnoreActivity: a daemon's
                                    inactivity-timeout ignores these */
} pyh_dir_conf;

/* What a mount speaks (pyh_alias.protocol) */
#define PYH_PROTO_WSGI 0
#define PYH_PROTO_ASGI 1

/* ASGILifespan / lifespan= values */
#define PYH_LIFESPAN_AUTO 0
#define PYH_LIFESPAN_ON 1
#define PYH_LIFESPAN_OFF 2

/* ASGIEventLoop values */
#define PYH_LOOP_AUTO 0
#define PYH_LOOP_ASYNCIO 1
#define PYH_LOOP_UVLOOP 2

typedef struct {
    const char *location;   /* URL prefix, or the regex source */
    ap_regex_t *regexp;     /* WSGIScriptAliasMatch only */
    const char *script;     /* file path; may hold $N with a regexp */
    int is_dir;             /* script is a directory: the URL's next
                               segment names the script in it */
    pyh_dir_conf options;   /* inline options; unset fields inherit */
    int protocol;           /* PYH_PROTO_WSGI or PYH_PROTO_ASGI */
    int lifespan;           /* ASGI: lifespan=, PYH_UNSET: ASGILifespan */
    int metrics_mount;      /* its counters in metrics.c (post_config) */
} pyh_alias;

typedef struct {
    const char *script;
    const char *process_group;
    const char *application_group;
} pyh_import;

typedef struct {
    apr_array_header_t *aliases; /* pyh_alias */
    int index;                   /* position in the server list, for relay */
    int asgi_lifespan;           /* ASGILifespan; PYH_UNSET: auto */
    /* WebSocket directives (asgi.c's WebSocket section); PYH_UNSET:
     * the defaults there */
    long ws_max_message;         /* ASGIWebSocketMaxMessage, bytes */
    int ws_compression;          /* ASGIWebSocketCompression On|Off */
    int ws_ping_interval;        /* ASGIWebSocketPingInterval, s; 0 off */
    int ws_ping_timeout;         /* ASGIWebSocketPingTimeout, s */
} pyh_server_conf;

/* A daemon group's start-up state, shared by Apache's parent, children and
 * the group's daemons (daemon.c). */
typedef struct pyh_dstate pyh_dstate;

/* A WSGIDaemonProcess group. Parsed in config.c; run by daemon.c. */
typedef struct pyh_daemon {
    const char *name;
    int index;
    server_rec *server;            /* where it was defined */
    int processes, threads;
    const char *user, *group;
    int user_given;                /* user= set (else Apache's User, known
                                      once the whole config is read) */
    uid_t uid;
    gid_t gid;
    apr_array_header_t *groups;    /* gid_t: supplementary-groups */
    int umask;                     /* -1: unset */
    int home_given;                /* home= was set (else the user's) */
    const char *home, *python_home, *display_name, *lang, *locale;
    apr_array_header_t *python_path; /* const char * */
    apr_int64_t maximum_requests, memory_limit;
    apr_interval_time_t restart_interval, inactivity_timeout, request_timeout,
        graceful_timeout, shutdown_timeout, startup_timeout, connect_timeout,
        socket_timeout, queue_timeout;
    int listen_backlog;
    /* mod_wsgi's resource options (0: unset, the system's) */
    int cpu_time_limit;            /* s of CPU: RLIMIT_CPU, then recycle */
    int cpu_priority;              /* setpriority() nice value */
    apr_int64_t virtual_memory_limit; /* bytes: RLIMIT_AS */
    apr_size_t stack_size;         /* request threads' stack, bytes */
    int send_buffer_size, recv_buffer_size; /* relay sockets' SO_SNDBUF/
                                              SO_RCVBUF, bytes */
    const char *socket_user;       /* owner of the listening socket */
    const char *script_user, *script_group; /* required owner of scripts */
    const char *chroot;            /* chroot= directory */
    double switch_interval;        /* switch-interval=, s; 0 unset */
    int server_metrics;            /* server-metrics=On */
    uid_t socket_uid;
    /* set in post_config (parent), inherited by children and daemons */
    const char *socket_path;
    int listen_fd;
    pyh_dstate *state;             /* shared memory, NULL when unmapped */
    apr_size_t state_size;
    /* Apache child side: idle relay connections, reused across requests */
    apr_thread_mutex_t *idle_mutex;
    struct pyh_rconn *idle;
} pyh_daemon;

/* Process-wide settings (main server context only). Reset in pre_config. */
typedef struct {
    const char *python_home;
    apr_array_header_t *python_path; /* const char * */
    apr_array_header_t *imports;     /* pyh_import */
    int restrict_embedded;
    apr_array_header_t *daemons;     /* pyh_daemon * */
    apr_hash_t *daemons_by_name;
    const char *socket_prefix;       /* WSGISocketPrefix; NULL: default */
    int per_interpreter_gil;  /* WSGIPerInterpreterGIL: named groups get
                                 their own GIL (PEP 684, 3.12+) */
    int free_threading;       /* WSGIFreeThreading: start a free-threaded
                                 build with the GIL off (PEP 703) */
    int asgi_event_loop;      /* ASGIEventLoop: PYH_LOOP_* */
} pyh_globals_t;

extern pyh_globals_t pyh_globals;
extern const command_rec pyh_commands[];

void *pyh_create_dir_conf(apr_pool_t *p, char *dir);
void *pyh_merge_dir_conf(apr_pool_t *p, void *base, void *add);
void *pyh_create_server_conf(apr_pool_t *p, server_rec *s);
void *pyh_merge_server_conf(apr_pool_t *p, void *base, void *add);
void pyh_reset_globals(apr_pool_t *p);
/* Resolve unset fields to defaults: overlay `over` on `base` into `out`. */
void pyh_overlay_options(pyh_dir_conf *out, const pyh_dir_conf *base,
                         const pyh_dir_conf *over);
/* Startup checks of a Python home (NULL: WSGIPythonHome or the built-in
 * one) and its readability by uid/gid; NULL when fine. */
const char *pyh_check_home_for(apr_pool_t *p, const char *home, uid_t uid,
                               gid_t gid, const char *user, const char *what);
const char *pyh_check_python_home(apr_pool_t *p, server_rec *s);
/* PYH0115 warnings for scripts the configuration names that their user
 * cannot read (a warning: only their requests fail). */
void pyh_warn_unreadable_scripts(apr_pool_t *p, server_rec *s);
/* The daemon group a process-group value names for r: NULL for embedded
 * mode (%{GLOBAL} or unset); *missing set to the name when there is no
 * such group. */
pyh_daemon *pyh_daemon_lookup(request_rec *r, const char *spec,
                              const char **missing);

/* ---- interpreters (interp.c) -------------------------------------------- */

enum pyh_key {
    PYH_K_REQUEST_METHOD, PYH_K_SCRIPT_NAME, PYH_K_PATH_INFO,
    PYH_K_QUERY_STRING, PYH_K_CONTENT_TYPE, PYH_K_CONTENT_LENGTH,
    PYH_K_SERVER_NAME, PYH_K_SERVER_PORT, PYH_K_SERVER_PROTOCOL,
    PYH_K_SERVER_SOFTWARE, PYH_K_SERVER_ADDR, PYH_K_SERVER_ADMIN,
    PYH_K_REMOTE_ADDR, PYH_K_REMOTE_PORT, PYH_K_REMOTE_USER,
    PYH_K_AUTH_TYPE, PYH_K_REQUEST_URI, PYH_K_REQUEST_SCHEME,
    PYH_K_SCRIPT_FILENAME, PYH_K_DOCUMENT_ROOT, PYH_K_CONTEXT_PREFIX,
    PYH_K_CONTEXT_DOCUMENT_ROOT, PYH_K_GATEWAY_INTERFACE,
    PYH_K_WSGI_VERSION, PYH_K_WSGI_URL_SCHEME, PYH_K_WSGI_INPUT,
    PYH_K_WSGI_ERRORS, PYH_K_WSGI_MULTITHREAD, PYH_K_WSGI_MULTIPROCESS,
    PYH_K_WSGI_RUN_ONCE, PYH_K_WSGI_FILE_WRAPPER,
    PYH_K_WSGI_INPUT_TERMINATED, PYH_K_MODWSGI_PROCESS_GROUP,
    PYH_K_MODWSGI_APPLICATION_GROUP, PYH_K_MODWSGI_CALLABLE_OBJECT,
    PYH_K_MODWSGI_SCRIPT_RELOADING, PYH_K_PYHOST_VERSION,
    PYH_K_MODWSGI_REQUEST_HANDLER, PYH_K_MODWSGI_REQUEST_ID,
    PYH_K_MODWSGI_VERSION,
    PYH_K_COUNT
};

/* Constant values shared by every request of one interpreter. */
enum pyh_const {
    PYH_C_EMPTY, PYH_C_GATEWAY, PYH_C_HTTP, PYH_C_HTTPS, PYH_C_GET,
    PYH_C_HTTP11, PYH_C_HTTP10, PYH_C_WSGI_VERSION, PYH_C_PYHOST_VERSION,
    PYH_C_CLOSE, PYH_C_FILENO, PYH_C_TELL, PYH_C_START_RESPONSE, PYH_C_WRITE,
    PYH_C_MODWSGI_VERSION, PYH_C_COUNT
};

typedef struct pyh_script pyh_script;

#define PYH_SPARE_REQUESTS 64

typedef struct pyh_interp {
    const char *name;             /* "" for the main interpreter */
    int index;                    /* slot in each thread's tstate cache */
    PyInterpreterState *istate;
    PyThreadState *first_tstate;  /* created along with the interpreter */
    apr_os_thread_t creator;      /* the thread that created it */
    int own_gil;                  /* made with its own GIL (PEP 684) */
    apr_pool_t *pool;             /* this interpreter's own (own allocator,
                                     lives as long as the child): used
                                     under its GIL and `lock` only */
    pyh_lock lock;                /* with `pool`: scripts, header_keys and
                                     pyh_script fields (free-threaded) */
    apr_thread_mutex_t *load_mutex;  /* serializes script (re)loads */
    apr_hash_t *scripts;          /* path -> pyh_script* */
    apr_hash_t *header_keys;      /* header name -> env_header (wsgi.c) */
    struct pyh_env_template *env_templates; /* wsgi.c; with `lock` */
    int env_template_count;
    /* request objects (wsgi.c) nobody kept after their request, ready for
     * the next one; with `lock` */
    PyObject *spare_requests[PYH_SPARE_REQUESTS];
    int spare_count;
    apr_array_header_t *tstates;  /* PyThreadState* made for threads */
    PyObject *keys[PYH_K_COUNT];
    PyObject *consts[PYH_C_COUNT];
    PyObject *multithread, *multiprocess;
    PyObject *format_exception;   /* traceback.format_exception */
    PyTypeObject *request_type, *input_type, *log_type, *file_wrapper_type;
    struct asgi_loop *asgi_loop;  /* asgi.c: this interpreter's event loop
                                     state, made on first need */
} pyh_interp;

int pyh_interp_child_init(apr_pool_t *pchild, server_rec *s);
/* Starts Python in this process for daemon group d (NULL: an Apache child,
 * embedded mode): d's python-home, python-path and WSGIImportScripts. */
int pyh_interp_process_init(apr_pool_t *p, server_rec *s, pyh_daemon *d);
int pyh_python_ready(void);
/* Returns the interpreter for `group` with its GIL held by this thread,
 * creating it on first use, or NULL (logged) on failure. */
pyh_interp *pyh_interp_acquire(const char *group, server_rec *s);
/* As pyh_interp_acquire; shared_gil: a group it creates shares the GIL
 * even under WSGIPerInterpreterGIL On (an ASGI mount's). */
pyh_interp *pyh_interp_acquire_for(const char *group, server_rec *s,
                                   int shared_gil);
void pyh_interp_release(pyh_interp *in);
/* pyh_interp_release for a thread that has already released the GIL. */
void pyh_interp_leave(pyh_interp *in);
/* Returns a new reference to the WSGI callable, loading or reloading
 * the script as needed; NULL with nothing raised means "logged, 500".
 * callable NULL: an ASGI mount's default, `application`, else `app`. */
/* A new reference to the module of script `path` (loaded or reloaded as
 * needed), or NULL, logged. */
PyObject *pyh_script_module(pyh_interp *in, request_rec *r,
                            const char *path, int reloading);
PyObject *pyh_script_callable(pyh_interp *in, request_rec *r,
                              const char *path, const char *callable,
                              int reloading, int *http_status);

/* ---- requests (wsgi.c, input.c) ------------------------------------------ */

typedef struct {
    const char *name;
    const char *value;
} pyh_header;

typedef struct pyh_request {
    request_rec *r;
    pyh_interp *interp;
    pyh_dir_conf conf;              /* effective, fully resolved */
    const char *script_name;
    const char *path_info;
    const char *app_group;
    const char *script_path;        /* the script to run when it is not
                                       r->filename (WSGIHandlerScript) */
    /* environ inputs (pyh_env_collect, or a daemon's relay frame): the
     * string value of each string-valued key indexed by enum pyh_key, NULL
     * when absent; they live at least as long as r->pool. */
    const char *vars[PYH_K_COUNT];
    /* response */
    int started;                    /* start_response called */
    int headers_sent;               /* status and headers are in r */
    int passed;                     /* something went down the filters */
    int status;
    const char *status_line;
    apr_array_header_t *headers;    /* pyh_header, pending */
    apr_off_t content_length;       /* -1: not given by the app */
    apr_off_t body_sent;
    int override_status;            /* WSGIErrorOverride took the response */
    int client_gone;
    apr_bucket_brigade *obb;
    /* ASGI through a daemon group: asgi is set on both sides of the relay
     * (lifespan: its PYH_LIFESPAN_* mode); in the daemon, relay_fd (> 0)
     * is the relay connection, whose hang-up means the client left, and
     * deadline (0: none) is when request-timeout ends the request. */
    int asgi, lifespan;
    int relay_fd;
    apr_time_t deadline;
    /* request body */
    apr_bucket_brigade *ibb;
    char *ibuf;                     /* read-ahead for readline */
    apr_size_t ibuf_cap, ibuf_pos, ibuf_len;
    int input_eos;
    int input_status;               /* HTTP status of a body read error;
                                     * AP_FILTER_ERROR: Apache answered */
    /* Python objects handed to the app, detached at request end: the
     * request object (start_response's self, owned) and the wsgi.input
     * and wsgi.errors it holds (borrowed from it) */
    PyObject *request_obj, *input_obj, *errors_obj;
} pyh_request;

/* Information translate_name leaves for the handler. */
typedef struct {
    const pyh_alias *alias;
    const char *script_name;
    const char *path_info;
} pyh_route;

/* Fill req->vars from request_rec and Apache calls; C only, no Python.
 * Needs req->r, req->conf, req->script_name, req->path_info, req->app_group. */
void pyh_env_collect(pyh_request *req);
/* environ (environ.c) from req->vars, r->headers_in, r->subprocess_env,
 * req->conf and req->input_obj/errors_obj; NULL with an exception set. */
PyObject *pyh_environ(pyh_interp *in, pyh_request *req);
void pyh_env_interp_clear(pyh_interp *in);
/* Frees what wsgi.c and environ.c keep per interpreter; before it ends,
 * with its GIL held. */
void pyh_wsgi_interp_clear(pyh_interp *in);
/* Runs the app. Builds environ only from req->vars, r->headers_in,
 * r->subprocess_env and req->conf; collects req->vars first unless
 * req->vars[PYH_K_REQUEST_METHOD] is already set (daemon mode). */
int pyh_wsgi_handle(pyh_interp *in, pyh_request *req, PyObject *app);
int pyh_wsgi_init_types(pyh_interp *in);

int pyh_input_init_type(pyh_interp *in);
/* wsgi.input: made once, attached to a request, detached at its end (and
 * possibly attached to a later one: see wsgi.c's request objects). */
PyObject *pyh_input_new(pyh_interp *in);
void pyh_input_attach(PyObject *input, pyh_request *req);
void pyh_input_detach(PyObject *input);

/* OK, or the HTTP status (501, 411, 413) that refuses r's body framing
 * before the app runs; chunked_ok: WSGIChunkedRequest On. */
int pyh_input_check(request_rec *r, int chunked_ok);
/* 1 when Apache's HTTP_IN filter refused the body and has sent the client
 * its own error response: the app's pending output (req->obb) is dropped,
 * since it would trail that page, and the client counts as gone. */
int pyh_input_answered(pyh_request *req);
/* Reads at most `want` body bytes through r's input filters into dest,
 * without the GIL; *got == 0 with req->input_eos set is the end. */
/* A descriptor of the app's, dup'ed into r->pool (closed with it, close-on-
 * exec), for a file bucket that must outlive the app's file object
 * (wsgi.file_wrapper, ASGI zerocopysend). wsgi.c. */
apr_status_t pyh_own_file(request_rec *r, apr_os_file_t fd,
                          apr_int32_t flags, apr_file_t **own);
apr_status_t pyh_input_fill(pyh_request *req, char *dest, apr_size_t want,
                            apr_size_t *got);

/* ---- ASGI (asgi.c) --------------------------------------------------------- */

/* The protocol table's row (interp.c): the loop starts on first need;
 * clear runs lifespan shutdown and ends the interpreter's loop thread. */
int pyh_asgi_interp_init(pyh_interp *in);
void pyh_asgi_interp_clear(pyh_interp *in);
/* Lifespan startup of the mounts known before any request. */
void pyh_asgi_child_init(apr_pool_t *pchild, server_rec *s);
/* The same in a daemon process of group d, for the mounts it serves,
 * before it accepts a request. */
void pyh_asgi_daemon_init(apr_pool_t *pchild, server_rec *s,
                          const pyh_daemon *d);
/* In a daemon: sends an ASGI early hint's headers to the Apache child,
 * which answers the client with a 103 (relay.c); -1 when the relay
 * connection failed. */
int pyh_relay_interim(request_rec *r, const apr_table_t *headers);
/* Has the client of r (an Apache child's request) gone away? No GIL. */
int pyh_asgi_client_gone(request_rec *r);
/* The effective lifespan mode (PYH_LIFESPAN_*) of ASGI mount a. */
int pyh_asgi_lifespan_mode(server_rec *s, const pyh_alias *a);
/* Runs an ASGI request: called with in's GIL held and a reference to app,
 * which it consumes; returns with the GIL released (the worker does the
 * request's I/O without it). */
int pyh_asgi_handle(pyh_interp *in, pyh_request *req, PyObject *app,
                    int lifespan);

/* ---- daemon mode (daemon_parent.c, daemon.c, relay.c) ------------------ */

/* Parent: make sockets, fork and supervise every group's processes. */
int pyh_daemon_start_all(apr_pool_t *pconf, server_rec *s);
/* Apache child: forget the daemons' listening sockets, make idle pools. */
void pyh_daemon_child_init(apr_pool_t *pchild, server_rec *s);
/* Parent, Apache's monitor hook: retry failed forks, kill daemons of
 * earlier generations that outstayed their time. */
int pyh_daemon_monitor(apr_pool_t *p, server_rec *s);
/* Apache child: OK, or 503 (logged) while group d cannot start. */
int pyh_daemon_check_available(request_rec *r, pyh_daemon *d);
/* Post_config: a group without user= runs as Apache's User and Group as
 * the whole configuration has them; NULL or an error message. */
const char *pyh_daemon_resolve_users(apr_pool_t *p);
/* Apache child: relay r to group d; returns the handler's status. */
int pyh_relay_request(request_rec *r, pyh_request *req, pyh_daemon *d);
/* Daemon process: serve one request arriving on connection fd. Returns 0
 * when the connection can take another request, -1 to close it. */
struct pyh_dconn;
int pyh_relay_serve(struct pyh_dconn *dc);
/* Per-generation secret every request frame carries. */
extern unsigned char pyh_relay_secret[16];
/* The daemon group this process runs, NULL in Apache's children. */
extern pyh_daemon *pyh_this_daemon;

/* ---- logging (log.c) ------------------------------------------------------ */

int pyh_log_init_type(pyh_interp *in);
/* A file-like object writing lines to the error log; req may be NULL. */
PyObject *pyh_log_new(pyh_interp *in, pyh_request *req, int level);
/* wsgi.errors: attach to a request (again), detach at its end. */
void pyh_log_attach(PyObject *log, pyh_request *req);
void pyh_log_detach(PyObject *log);
/* Redirect sys.stdout and sys.stderr of this interpreter to the log. */
int pyh_log_redirect_stdio(pyh_interp *in);
/* Log the pending Python exception with its traceback (one PYH entry,
 * then a line per traceback line) and clear it. r may be NULL (then s is
 * used). */
/* Logs text that may hold a traceback (several lines) as one line per
 * line, tied together by the request's log id; r may be NULL (then s). */
void pyh_log_text(request_rec *r, server_rec *s, int level, const char *text);
void pyh_log_exception(pyh_interp *in, request_rec *r, server_rec *s,
                       const char *what);

/* The request this thread is serving, for sys.stderr attribution. */
extern PYH_THREAD_LOCAL pyh_request *pyh_current_request;

/* ---- mod_wsgi drop-in (directives_compat.c) ------------------------------ */

/* Settings of mod_wsgi directives beyond the core ones. Reset in
 * pre_config. */
typedef struct {
    apr_array_header_t *notes;    /* accepted-and-ignored, logged once */
    apr_array_header_t *warnings; /* WSGIPythonWarnings */
    int optimize;                 /* WSGIPythonOptimize; -1 unset */
    int dont_write_bytecode;      /* -1 unset */
    int hash_seed_set, hash_seed_random;
    unsigned long hash_seed;
    double switch_interval;       /* <= 0: unset */
    int restrict_stdout, restrict_stdin;
    int restrict_signal;          /* default On, as in mod_wsgi */
    int server_metrics;           /* WSGIServerMetrics: server_metrics() */
    apr_array_header_t *blocks;   /* <WSGIInterpreterOptions> blocks */
} pyh_compat_t;

extern pyh_compat_t pyh_compat;

void pyh_compat_reset(apr_pool_t *p);
void pyh_compat_register_aliases(apr_pool_t *pconf);
const char *pyh_compat_check_foreign(apr_pool_t *p);
void pyh_compat_log_notes(server_rec *s);
int pyh_compat_parse_option(apr_pool_t *p, const char **line,
                            const char **name, const char **value);
int pyh_compat_daemon_option(cmd_parms *cmd, const char *group,
                             const char *name, const char *value);
PyStatus pyh_compat_pyconfig(PyConfig *config);
int pyh_compat_interp_setup(pyh_interp *in);
const char *pyh_compat_accept(cmd_parms *cmd, void *dconf, const char *args);
/* script-user= / script-group=: OK, or 403 (logged) for a script (or its
 * directory) of another owner or writable by everyone. */
int pyh_compat_check_script_owner(request_rec *r, const pyh_daemon *d,
                                  const char *path);
/* <WSGIInterpreterOptions process-group=P application-group=G> */
const char *pyh_compat_options_section(cmd_parms *cmd, void *dconf,
                                       const char *arg);
/* 1 when cmd is inside <WSGIInterpreterOptions>; then the directive's
 * value goes to the block (pyh_compat_block_set). */
int pyh_compat_in_block(cmd_parms *cmd);
const char *pyh_compat_block_set(cmd_parms *cmd, const char *v);
/* WSGIPerInterpreterGIL for application group ag, WSGIFreeThreading for
 * this process, with the blocks that match; dflt: the global setting. */
int pyh_compat_own_gil(const char *ag, int dflt);
int pyh_compat_free_threading(int dflt);
const char *pyh_compat_python_setting(cmd_parms *cmd, void *dconf,
                                      const char *v);

#define PYH_COMPAT_ACCEPT(name, why) \
    AP_INIT_RAW_ARGS(name, pyh_compat_accept, why,                        \
                     RSRC_CONF | ACCESS_CONF | OR_ALL,                     \
                     "mod_wsgi's " name ": accepted, not applied (" why ")")
#define PYH_COMPAT_AUTH(name) \
    AP_INIT_RAW_ARGS(name, pyh_auth_script_directive, NULL,               \
                     OR_AUTHCFG | RSRC_CONF,                               \
                     "script-path [application-group=G]: mod_wsgi's " name)
const char *pyh_auth_script_directive(cmd_parms *cmd, void *dconf,
                                      const char *args);
void pyh_auth_register_hooks(apr_pool_t *p);
const char *pyh_compat_trusted_proxy_headers(cmd_parms *cmd, void *dconf,
                                             const char *args);
const char *pyh_compat_trusted_proxies(cmd_parms *cmd, void *dconf,
                                       const char *args);
/* What trusted proxy headers say (pyh_compat_proxy_view); NULL: not said. */
typedef struct {
    const char *client; /* the forwarded client address */
    const char *host;   /* X-Forwarded-Host, X-Host: now r->headers_in's Host */
    const char *server; /* X-Forwarded-Server */
    const char *port;   /* X-Forwarded-Port, unchecked */
    const char *scheme; /* "http" or "https" */
    /* an ASGI scope's "server", from host/server and port; port 0: not said */
    const char *server_host;
    int server_port;
} pyh_proxy_view;
int pyh_compat_proxy_view(request_rec *r, const pyh_dir_conf *conf,
                          pyh_proxy_view *pv);
#define PYH_COMPAT_PYTHON(name, help) \
    AP_INIT_TAKE1(name, pyh_compat_python_setting, NULL, RSRC_CONF, help)

/* ---- dispatch and handler scripts (dispatch.c) ---------------------------- */

const char *pyh_handler_script_directive(cmd_parms *cmd, void *dconf,
                                         const char *args);
/* WSGIDispatchScript for req, in the Apache child: its process_group(),
 * application_group() and callable_object() may each replace the value
 * (NULL: keep). OK, or 500 (logged). */
int pyh_dispatch_run(pyh_request *req, const char **process_group,
                     const char **application_group, const char **callable);
const char *pyh_restrict_process_directive(cmd_parms *cmd, void *dconf,
                                           const char *args);
/* WSGIRestrictProcess: OK when req may run in group `name` ("" embedded),
 * else 500 (logged). */
int pyh_restrict_process_check(pyh_request *req, const char *name);
/* The WSGIHandlerScript r's handler names, or NULL. */
const pyh_handler_script *pyh_handler_script_for(request_rec *r);

/* The rows config.c's command table ends with. */
#define PYH_COMPAT_COMMANDS                                                    \
    PYH_COMPAT_PYTHON("WSGIPythonOptimize",                                    \
                      "0, 1 or 2: Python's -O level"),                         \
    PYH_COMPAT_PYTHON("WSGIPythonHashSeed",                                    \
                      "'random' or 0..4294967295: PYTHONHASHSEED"),            \
    PYH_COMPAT_PYTHON("WSGIPythonWarnings",                                    \
                      "a warnings filter (Python's -W); repeatable"),          \
    PYH_COMPAT_PYTHON("WSGIDontWriteBytecode",                                 \
                      "On: do not write .pyc files"),                          \
    PYH_COMPAT_PYTHON("WSGISwitchInterval",                                    \
                      "seconds: sys.setswitchinterval in every interpreter"),  \
    PYH_COMPAT_PYTHON("WSGIRestrictStdout",                                    \
                      "On: any use of sys.stdout raises OSError"),             \
    PYH_COMPAT_PYTHON("WSGIRestrictStdin",                                     \
                      "On: any use of sys.stdin raises OSError"),              \
    PYH_COMPAT_ACCEPT("WSGISocketRotation",                                    \
                      "pyhost manages its daemon sockets itself"),             \
    PYH_COMPAT_ACCEPT("WSGIAcceptMutex",                                       \
                      "pyhost's daemons take no accept mutex"),                \
    PYH_COMPAT_ACCEPT("WSGIVerboseDebugging",                                  \
                      "use LogLevel pyhost:debug"),                            \
    PYH_COMPAT_ACCEPT("WSGIPythonEggs", "Python eggs are obsolete"),           \
    PYH_COMPAT_ACCEPT("WSGIDestroyInterpreter",                                \
                      "pyhost ends its interpreters itself at process exit"),  \
    PYH_COMPAT_ACCEPT("WSGILazyInitialization",                                \
                      "pyhost always starts Python after fork"),               \
    PYH_COMPAT_ACCEPT("WSGICaseSensitivity",                                   \
                      "only meaningful on Windows and macOS"),                 \
    PYH_COMPAT_PYTHON("WSGIRestrictSignal",                                    \
                      "Off: apps may install signal handlers (On: ignored, "   \
                      "with a warning)"),                                      \
    AP_INIT_RAW_ARGS("WSGIRestrictProcess", pyh_restrict_process_directive,   \
                     NULL, RSRC_CONF | ACCESS_CONF,                            \
                     "group...: the only process groups (%{GLOBAL}: "         \
                     "embedded) requests here may be sent to"),                \
    AP_INIT_FLAG("WSGIPassApacheRequest", cfg_set_flag,                        \
                 (void *)APR_OFFSETOF(pyh_dir_conf, pass_apache_request),      \
                 RSRC_CONF | ACCESS_CONF,                                      \
                 "On: environ['apache.request_rec'] is a capsule of the "     \
                 "request_rec (embedded mode, as mod_wsgi)"),                  \
    AP_INIT_FLAG("WSGIIgnoreActivity", cfg_set_flag,                           \
                 (void *)APR_OFFSETOF(pyh_dir_conf, ignore_activity),          \
                 RSRC_CONF | ACCESS_CONF | OR_FILEINFO,                        \
                 "On: these requests do not keep a daemon's "                 \
                 "inactivity-timeout from running out (health checks)"),      \
    PYH_COMPAT_ACCEPT("WSGIEnableSendfile",                                    \
                      "wsgi.file_wrapper always becomes a file bucket"),       \
    AP_INIT_RAW_ARGS("WSGITrustedProxyHeaders",                                \
                     pyh_compat_trusted_proxy_headers, NULL,                   \
                     RSRC_CONF | ACCESS_CONF | OR_FILEINFO,                    \
                     "header...: proxy headers trusted proxies may set"),      \
    AP_INIT_RAW_ARGS("WSGITrustedProxies", pyh_compat_trusted_proxies,         \
                     NULL, RSRC_CONF | ACCESS_CONF | OR_FILEINFO,              \
                     "address[/bits]...: the trusted proxies"),                \
    AP_INIT_FLAG("WSGIGroupAuthoritative", cfg_set_flag,                       \
                 (void *)APR_OFFSETOF(pyh_dir_conf, group_authoritative),      \
                 OR_AUTHCFG | RSRC_CONF,                                       \
                 "Off: Require wsgi-group without a match lets other "         \
                 "providers decide"),                                          \
    PYH_COMPAT_PYTHON("WSGIServerMetrics",                                     \
                      "On: mod_wsgi.server_metrics() answers (Off: None)"),    \
    PYH_COMPAT_ACCEPT("WSGITelemetryService",                                  \
                      "mod_wsgi's telemetry is not implemented"),              \
    PYH_COMPAT_ACCEPT("WSGITelemetryOptions",                                  \
                      "mod_wsgi's telemetry is not implemented"),              \
    PYH_COMPAT_ACCEPT("WSGISlowRequests",                                      \
                      "mod_wsgi's telemetry is not implemented"),              \
    AP_INIT_RAW_ARGS("WSGIDispatchScript", pyh_auth_script_directive, NULL,   \
                     RSRC_CONF | ACCESS_CONF,                                  \
                     "script-path [application-group=G]: its process_group(),"\
                     " application_group(), callable_object() choose per "    \
                     "request"),                                               \
    AP_INIT_RAW_ARGS("WSGIHandlerScript", pyh_handler_script_directive, NULL, \
                     RSRC_CONF | ACCESS_CONF,                                  \
                     "name script-path [process-group=P application-group=G " \
                     "pass-authorization=On|Off]: handler `name` runs the "   \
                     "script's handle_request"),                               \
    PYH_COMPAT_AUTH("WSGIAccessScript"),                                       \
    PYH_COMPAT_AUTH("WSGIAuthUserScript"),                                     \
    PYH_COMPAT_AUTH("WSGIAuthGroupScript"),                                    \
    AP_INIT_RAW_ARGS("<WSGIInterpreterOptions", pyh_compat_options_section,   \
                     NULL, RSRC_CONF,                                          \
                     "process-group=P and/or application-group=G: scopes "    \
                     "per-interpreter settings (mod_wsgi 6)")

#endif
