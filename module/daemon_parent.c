/* daemon_parent.c - WSGIDaemonProcess groups in Apache's parent: each
 * group's listening UNIX socket (and its directory), forking the group's
 * processes, replacing any that die, backing off from a group that cannot
 * start, and accounting for every generation's processes and socket files
 * across graceful and hard restarts until Apache stops. The processes
 * themselves are daemon.c's. */
#include "daemon.h"
#include "relay.h"
#include "metrics.h"

#include "http_core.h"
#include "http_main.h"
#include "ap_mpm.h"
#include "mpm_common.h"
#include "unixd.h"
#include "apr_strings.h"
#include "apr_thread_proc.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* Apache unloads and reloads this module at every restart, so its statics
 * start again with each configuration. What has to outlive one - daemon
 * processes of earlier generations still finishing their connections, and
 * the socket files they serve - is kept in malloc'd memory found again
 * through the process pool's userdata (the "book"). The book holds no
 * pointer into this module: each generation registers the processes it
 * finds there with APR as "other children" (so the MPM hands their deaths
 * to us and never meets a child it does not know), and drops those
 * registrations before the module goes. The key carries a layout number:
 * a module with another layout starts a book of its own. */
#define DAEMON_BOOK_KEY "pyhost-daemon-book/1"

/* A generation's socket file: unlinked when the last process serving it
 * is gone, so that old children finishing requests after a graceful
 * restart can still connect to the old daemons. */
typedef struct daemon_sock {
    char *path;
    int refs;                   /* current slots and retired processes */
    struct daemon_sock *next;
} daemon_sock;

/* A daemon process of an earlier generation, told to stop. */
typedef struct daemon_retired {
    apr_proc_t proc;
    daemon_sock *sock;
    char group[64];             /* for the log */
    apr_interval_time_t shutdown_timeout;
    apr_time_t kill_at;         /* still there then: SIGKILL */
    int registered;             /* an APR other child of this generation */
    struct daemon_retired *next;
} daemon_retired;

typedef struct {
    daemon_sock *socks;
    daemon_retired *retired;
} daemon_book;

/* Failed starts in a row before a group backs off and answers 503, and
 * the longest wait between two attempts after that. */
#define DAEMON_FAILS_BEFORE_BACKOFF 3
#define DAEMON_BACKOFF_MAX apr_time_from_sec(30)

static apr_pool_t *daemon_pconf;
static daemon_book *daemon_the_book;
static apr_array_header_t *daemon_procs; /* pyh_dproc *, this generation */

static daemon_book *daemon_book_get(process_rec *process)
{
    void *found = NULL;
    daemon_book *book;
    if (apr_pool_userdata_get(&found, DAEMON_BOOK_KEY, process->pool)
            == APR_SUCCESS
        && found)
        return found;
    if (!(book = calloc(1, sizeof(*book))))
        return NULL;
    /* No cleanup: a function of ours would be gone when the pool ends. */
    if (apr_pool_userdata_set(book, DAEMON_BOOK_KEY, apr_pool_cleanup_null,
                              process->pool) != APR_SUCCESS) {
        free(book);
        return NULL;
    }
    return book;
}

static daemon_sock *daemon_sock_add(daemon_book *book, const char *path)
{
    daemon_sock *sk = calloc(1, sizeof(*sk));
    if (!sk || !(sk->path = strdup(path))) {
        free(sk);
        return NULL;
    }
    sk->next = book->socks;
    book->socks = sk;
    return sk;
}

static void daemon_sock_release(daemon_book *book, daemon_sock *sk)
{
    daemon_sock **pp;
    if (--sk->refs > 0)
        return;
    unlink(sk->path);
    for (pp = &book->socks; *pp; pp = &(*pp)->next)
        if (*pp == sk) {
            *pp = sk->next;
            break;
        }
    free(sk->path);
    free(sk);
}

/* Forgets a retired process that is gone (reaped). */
static void daemon_retired_forget(daemon_book *book, daemon_retired *rt)
{
    daemon_retired **pp;
    for (pp = &book->retired; *pp; pp = &(*pp)->next)
        if (*pp == rt) {
            *pp = rt->next;
            break;
        }
    daemon_sock_release(book, rt->sock);
    free(rt);
}

static void daemon_retired_maintenance(int reason, void *data,
                                       apr_wait_t status)
{
    daemon_retired *rt = data;
    (void)status;
    if (reason == APR_OC_REASON_UNREGISTER) {
        rt->registered = 0;
        return;
    }
    if (reason != APR_OC_REASON_DEATH && reason != APR_OC_REASON_LOST)
        return;
    if (rt->registered) {
        rt->registered = 0;
        apr_proc_other_child_unregister(rt);
    }
    daemon_retired_forget(daemon_the_book, rt);
}

/* A process of the ending generation joins the retired ones; its slot's
 * hold on the socket file passes to it. */
static void daemon_retire(daemon_book *book, pyh_dproc *dp, apr_time_t now)
{
    daemon_retired *rt = calloc(1, sizeof(*rt));
    if (!rt) {
        /* Untracked, it would keep its socket file forever. */
        daemon_sock_release(book, dp->sock);
        return;
    }
    rt->proc = dp->proc;
    rt->sock = dp->sock;
    apr_cpystrn(rt->group, dp->d->name, sizeof(rt->group));
    rt->shutdown_timeout = dp->d->shutdown_timeout;
    /* It leaves by itself after graceful-timeout (and Python's finalizing,
     * shutdown-timeout): past that and a margin, it is stuck. */
    rt->kill_at = now + dp->d->graceful_timeout + dp->d->shutdown_timeout
                  + apr_time_from_sec(5);
    rt->next = book->retired;
    book->retired = rt;
}

/* A new generation takes the retired processes over: those already gone
 * are forgotten, the others registered so that their deaths come to us. */
static void daemon_adopt_retired(daemon_book *book, apr_pool_t *pconf)
{
    daemon_retired *rt, *next;
    for (rt = book->retired; rt; rt = next) {
        pid_t w = waitpid(rt->proc.pid, NULL, WNOHANG);
        next = rt->next;
        if (w == rt->proc.pid || (w < 0 && errno == ECHILD)) {
            daemon_retired_forget(book, rt);
            continue;
        }
        apr_proc_other_child_register(&rt->proc, daemon_retired_maintenance,
                                      rt, NULL, pconf);
        rt->registered = 1;
    }
}

/* Kills retired processes past their time (they are reaped as usual). */
static void daemon_check_retired(daemon_book *book, apr_time_t now)
{
    daemon_retired *rt;
    for (rt = book->retired; rt; rt = rt->next) {
        if (now < rt->kill_at)
            continue;
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ap_server_conf,
                     "PYH0043: daemon process %d of group '%s' (an earlier "
                     "generation) did not stop in time; killing it",
                     (int)rt->proc.pid, rt->group);
        kill(rt->proc.pid, SIGKILL);
        rt->kill_at = now + apr_time_from_sec(10);
    }
}

/* Apache stops: every daemon still there, of any generation, is asked to
 * stop, waited for (shutdown-timeout) and killed if need be; then every
 * socket file goes. */
static void daemon_stop_all(daemon_book *book)
{
    apr_interval_time_t wait = 0;
    apr_time_t until;
    daemon_retired *rt, *next;
    daemon_sock *sk;

    for (rt = book->retired; rt; rt = rt->next) {
        kill(rt->proc.pid, SIGTERM);
        if (rt->shutdown_timeout > wait)
            wait = rt->shutdown_timeout;
    }
    until = apr_time_now() + wait + apr_time_from_sec(1);
    for (;;) {
        for (rt = book->retired; rt; rt = next) {
            pid_t w = waitpid(rt->proc.pid, NULL, WNOHANG);
            next = rt->next;
            if (w == rt->proc.pid || (w < 0 && errno == ECHILD))
                daemon_retired_forget(book, rt);
        }
        if (!book->retired || apr_time_now() >= until)
            break;
        apr_sleep(apr_time_from_msec(20));
    }
    while ((rt = book->retired)) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ap_server_conf,
                     "PYH0043: daemon process %d of group '%s' did not stop "
                     "in time; killing it",
                     (int)rt->proc.pid, rt->group);
        kill(rt->proc.pid, SIGKILL);
        waitpid(rt->proc.pid, NULL, 0);
        daemon_retired_forget(book, rt);
    }
    while ((sk = book->socks)) { /* none should be left; make sure */
        book->socks = sk->next;
        unlink(sk->path);
        free(sk->path);
        free(sk);
    }
}

static void daemon_spawn(pyh_dproc *dp);

static int daemon_any_ready(pyh_daemon *d)
{
    int i;
    for (i = 0; i < d->processes; i++)
        if (d->state->slot[i] == DSLOT_READY)
            return 1;
    return 0;
}

/* Requests that reached a failing group's socket just before Apache's
 * children learnt it was failing wait in its backlog, where no process
 * accepts them: the parent answers them itself with an S frame (503, see
 * relay.h) rather than leave them to their timeout. Non-blocking: the
 * frame is 12 bytes into an empty socket; the request read first (up to a
 * little) so that closing does not reset the connection before the child
 * reads the answer. */
static void daemon_refuse_backlog(pyh_daemon *d)
{
    unsigned char frame[PYH_FRAME_HDR + 4] = {0};
    uint32_t len = 4;
    int32_t status = HTTP_SERVICE_UNAVAILABLE;
    char sink[4096];
    int fd, n = 0;

    if (d->listen_fd < 0)
        return;
    frame[0] = PYH_F_STATUS;
    memcpy(frame + 4, &len, sizeof(len));
    memcpy(frame + PYH_FRAME_HDR, &status, sizeof(status));
    while (n < 1000
           && (fd = accept4(d->listen_fd, NULL, NULL,
                            SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
        int i;
        for (i = 0; i < 16 && recv(fd, sink, sizeof(sink), 0) > 0; i++)
            ;
        if (send(fd, frame, sizeof(frame), MSG_NOSIGNAL) < 0)
            ap_log_error(APLOG_MARK, APLOG_DEBUG, errno, ap_server_conf,
                         "PYH0056: daemon group '%s': could not answer a "
                         "waiting request",
                         d->name);
        close(fd);
        n++;
    }
    if (n)
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, ap_server_conf,
                     "PYH0056: daemon group '%s' cannot start its processes; "
                     "answered %d request(s) waiting for one with 503",
                     d->name, n);
}

/* Books a process that died. One that never got ready is a failed start:
 * a slot whose starts keep failing waits longer and longer before the next
 * one (capped), and once a group has failed DAEMON_FAILS_BEFORE_BACKOFF
 * starts in a row with no process serving, Apache's children answer its
 * requests with 503 at once instead of queueing them on a socket nobody
 * accepts from. */
static void daemon_note_death(pyh_dproc *dp, int reason, apr_wait_t status)
{
    pyh_daemon *d = dp->d;
    pyh_dstate *st = d->state;
    int pid = (int)dp->proc.pid;
    char cause[sizeof(st->cause)];
    char next[40];
    int was;

    was = st->slot[dp->slot];
    st->slot[dp->slot] = DSLOT_STARTING;
    pyh_metrics_daemon_died(dp, was == DSLOT_READY,
                            reason != APR_OC_REASON_LOST && WIFSIGNALED(status));
    if (was == DSLOT_READY) {
        dp->fails = 0;
        dp->delay = 0;
        /* From the MPM, status is the exit code or the signal number. */
        if (reason == APR_OC_REASON_LOST)
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, ap_server_conf,
                         "PYH0040: daemon process %d of group '%s' was lost; "
                         "starting a new one",
                         pid, d->name);
        else if (WIFSIGNALED(status))
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, ap_server_conf,
                         "PYH0040: daemon process %d of group '%s' was killed "
                         "by signal %d; starting a new one",
                         pid, d->name, WTERMSIG(status));
        else
            ap_log_error(APLOG_MARK, APLOG_INFO, 0, ap_server_conf,
                         "PYH0041: daemon process %d of group '%s' exited "
                         "(%d); starting a new one",
                         pid, d->name, WEXITSTATUS(status));
        return;
    }
    memcpy(cause, st->cause, sizeof(cause));
    cause[sizeof(cause) - 1] = '\0';
    if (was != DSLOT_FAILED || !cause[0])
        apr_snprintf(cause, sizeof(cause),
                     "the process ended (status %d) before it was ready",
                     reason == APR_OC_REASON_LOST ? -1 : (int)status);
    dp->fails++;
    st->fails++;
    if (dp->fails < DAEMON_FAILS_BEFORE_BACKOFF)
        dp->delay = 0;
    else if (dp->fails - DAEMON_FAILS_BEFORE_BACKOFF >= 5)
        dp->delay = DAEMON_BACKOFF_MAX;
    else
        dp->delay = apr_time_from_sec(1)
                    << (dp->fails - DAEMON_FAILS_BEFORE_BACKOFF);
    if (dp->delay > DAEMON_BACKOFF_MAX)
        dp->delay = DAEMON_BACKOFF_MAX;
    st->retry_at = apr_time_now() + dp->delay;
    if (dp->delay)
        apr_snprintf(next, sizeof(next), "in %" APR_TIME_T_FMT " s",
                     apr_time_sec(dp->delay));
    else
        apr_cpystrn(next, "at once", sizeof(next));
    if (!st->failing && st->fails >= DAEMON_FAILS_BEFORE_BACKOFF
        && !daemon_any_ready(d)) {
        st->failing = 1;
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, ap_server_conf,
                     "PYH0055: daemon group '%s': %d process starts in a row "
                     "failed (%s); its requests get 503 until a process "
                     "starts; trying again %s, then less and less often (at "
                     "most every %" APR_TIME_T_FMT " s)",
                     d->name, st->fails, cause, next,
                     apr_time_sec(DAEMON_BACKOFF_MAX));
    }
    else {
        ap_log_error(APLOG_MARK,
                     dp->fails <= DAEMON_FAILS_BEFORE_BACKOFF ? APLOG_WARNING
                                                               : APLOG_INFO,
                     0, ap_server_conf,
                     "PYH0057: daemon process %d of group '%s' could not "
                     "start (%s); trying again %s",
                     pid, d->name, cause, next);
    }
    if (st->failing)
        daemon_refuse_backlog(d);
}

/* Apache is restarting or stopping (its reaping then also reports our
 * children): the pconf cleanup that follows takes care of the slot. */
static int daemon_apache_stopping(void)
{
    int state = AP_MPMQ_RUNNING;
    return ap_mpm_query(AP_MPMQ_MPM_STATE, &state) == APR_SUCCESS
           && state == AP_MPMQ_STOPPING;
}

static void daemon_maintenance(int reason, void *data, apr_wait_t status)
{
    pyh_dproc *dp = data;
    if (reason == APR_OC_REASON_UNREGISTER) {
        dp->registered = 0; /* by us, or by pconf's cleanup */
        return;
    }
    if (reason != APR_OC_REASON_DEATH && reason != APR_OC_REASON_LOST)
        return;
    if (dp->registered) {
        dp->registered = 0;
        apr_proc_other_child_unregister(dp);
    }
    daemon_note_death(dp, reason, status);
    dp->proc.pid = 0;
    if (!daemon_apache_stopping())
        daemon_spawn(dp);
}

static void daemon_spawn(pyh_dproc *dp)
{
    apr_status_t rv;
    dp->d->state->slot[dp->slot] = DSLOT_STARTING;
    rv = apr_proc_fork(&dp->proc, daemon_pconf);
    if (rv == APR_INCHILD)
        pyh_daemon_main(dp, daemon_pconf);
    if (rv != APR_INPARENT) {
        dp->proc.pid = 0; /* the monitor hook tries again */
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, ap_server_conf,
                     "PYH0042: could not fork a daemon process for group '%s'",
                     dp->d->name);
        return;
    }
    apr_proc_other_child_register(&dp->proc, daemon_maintenance, dp, NULL,
                                  daemon_pconf);
    dp->registered = 1;
}

/* Apache's monitor hook (the parent, every few seconds): slots whose fork
 * failed get another try; retired processes past their time are killed;
 * requests waiting on a failing group are answered. */
int pyh_daemon_monitor(apr_pool_t *p, server_rec *s)
{
    int i;
    (void)p;
    (void)s;
    if (!daemon_the_book)
        return DECLINED;
    daemon_check_retired(daemon_the_book, apr_time_now());
    for (i = 0; daemon_procs && i < daemon_procs->nelts; i++) {
        pyh_dproc *dp = APR_ARRAY_IDX(daemon_procs, i, pyh_dproc *);
        if (dp->proc.pid <= 0 && !daemon_apache_stopping())
            daemon_spawn(dp);
        if (dp->slot == 0 && dp->d->state && dp->d->state->failing)
            daemon_refuse_backlog(dp->d);
    }
    return OK;
}

/* pconf cleanup: a restart or stop retires this generation's daemons. They
 * get SIGTERM and finish what their connections still bring. At a restart
 * they join the book for the next generation to watch over; at a stop the
 * parent waits for all daemons of every generation (shutdown-timeout),
 * kills what is left, and removes every socket file. */
static apr_status_t daemon_parent_cleanup(void *data)
{
    apr_array_header_t *procs = data;
    daemon_book *book = daemon_the_book;
    apr_time_t now = apr_time_now();
    daemon_retired *rt;
    int i;

    /* The handler is in this module, which is about to be unloaded. */
    signal(SIGCHLD, SIG_DFL);
    /* So are the maintenance functions APR would call. */
    for (rt = book->retired; rt; rt = rt->next)
        if (rt->registered) {
            rt->registered = 0;
            apr_proc_other_child_unregister(rt);
        }
    for (i = 0; i < procs->nelts; i++) {
        pyh_dproc *dp = APR_ARRAY_IDX(procs, i, pyh_dproc *);
        if (dp->d->listen_fd >= 0) {
            close(dp->d->listen_fd);
            dp->d->listen_fd = -1;
        }
        if (dp->registered) {
            dp->registered = 0;
            apr_proc_other_child_unregister(dp);
        }
        if (dp->proc.pid <= 0) {
            daemon_sock_release(book, dp->sock);
            continue;
        }
        kill(dp->proc.pid, SIGTERM);
        daemon_retire(book, dp, now);
        dp->proc.pid = 0;
    }
    daemon_procs = NULL;
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_EXITING)
        daemon_stop_all(book);
    daemon_the_book = NULL;
    return APR_SUCCESS;
}

/* Makes the socket directory when it is missing, as mkdir -p does: owned
 * by root, mode 0755, as Apache's start scripts make DefaultRuntimeDir
 * (/run is often a tmpfs emptied at boot; a container starts without it). */
static int daemon_make_dir(apr_pool_t *p, const char *dir, server_rec *s)
{
    char *path = apr_pstrdup(p, dir), *slash = path;
    struct stat st;

    if (!*path || stat(path, &st) == 0)
        return 0; /* there (if not a directory, bind says so) */
    for (;;) {
        slash = strchr(slash + 1, '/');
        if (slash)
            *slash = '\0';
        if (mkdir(path, 0755) == 0) {
            /* Whatever the umask; root's even if our group is another. */
            if (chmod(path, 0755) < 0
                || (geteuid() == 0 && chown(path, 0, 0) < 0))
                break;
            ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                         "PYH0054: made the missing directory '%s' for the "
                         "daemon sockets",
                         path);
        }
        else if (errno != EEXIST) {
            break;
        }
        if (!slash)
            return 0;
        *slash = '/';
    }
    ap_log_error(APLOG_MARK, APLOG_CRIT, errno, s,
                 "PYH0044: cannot make the directory '%s' for the daemon "
                 "sockets ('%s'); make it, or set WSGISocketPrefix to a "
                 "path in a directory that exists",
                 path, dir);
    return -1;
}

void pyh_daemon_set_buffers(int fd, const pyh_daemon *d, server_rec *s)
{
    /* send-buffer-size / receive-buffer-size (mod_wsgi): the relay socket's
     * kernel buffers. A failure keeps the system's size, as in mod_wsgi. */
    if (d->send_buffer_size
        && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &d->send_buffer_size,
                      sizeof(d->send_buffer_size)) < 0)
        ap_log_error(APLOG_MARK, APLOG_WARNING, errno, s,
                     "PYH0125: daemon group '%s': cannot set send-buffer-size"
                     "=%d; the system's default applies",
                     d->name, d->send_buffer_size);
    if (d->recv_buffer_size
        && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &d->recv_buffer_size,
                      sizeof(d->recv_buffer_size)) < 0)
        ap_log_error(APLOG_MARK, APLOG_WARNING, errno, s,
                     "PYH0125: daemon group '%s': cannot set "
                     "receive-buffer-size=%d; the system's default applies",
                     d->name, d->recv_buffer_size);
}

static int daemon_make_socket(apr_pool_t *p, pyh_daemon *d, server_rec *s)
{
    const char *prefix = pyh_globals.socket_prefix
                             ? pyh_globals.socket_prefix
                             : ap_runtime_dir_relative(p, "pyhost");
    const char *slash;
    struct sockaddr_un sa;
    int fd;

    d->socket_path = apr_psprintf(p, "%s.%d.%d.%d.sock", prefix, (int)getpid(),
                                  ap_state_query(AP_SQ_CONFIG_GEN), d->index);
    if (strlen(d->socket_path) >= sizeof(sa.sun_path)) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     "PYH0044: daemon socket path '%s' is longer than %d "
                     "bytes; set a shorter WSGISocketPrefix",
                     d->socket_path, (int)sizeof(sa.sun_path) - 1);
        return -1;
    }
    if ((slash = strrchr(d->socket_path, '/')) && slash > d->socket_path
        && daemon_make_dir(p,
                           apr_pstrmemdup(p, d->socket_path,
                                          (apr_size_t)(slash - d->socket_path)),
                           s) < 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, d->socket_path);
    unlink(d->socket_path);
    /* Non-blocking: every process of the group waits on this socket, and
     * the ones that lose the race for a connection must not block. */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd >= 0)
        pyh_daemon_set_buffers(fd, d, s);
    /* socket-user (mod_wsgi): the socket belongs to that user instead of
     * Apache's User, for children that run as another user (mpm-itk). */
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0
        || chmod(d->socket_path, 0600) < 0
        || (geteuid() == 0
            && chown(d->socket_path,
                     d->socket_user ? d->socket_uid : ap_unixd_config.user_id,
                     (gid_t)-1) < 0)
        || listen(fd, d->listen_backlog) < 0) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, errno, s,
                     "PYH0044: cannot make daemon socket '%s' for group '%s'"
                     " (WSGISocketPrefix sets its directory)",
                     d->socket_path, d->name);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    d->listen_fd = fd;
    return 0;
}

static apr_status_t daemon_unmap_state(void *data)
{
    pyh_daemon *d = data;
    if (d->state)
        munmap((void *)d->state, d->state_size);
    d->state = NULL;
    return APR_SUCCESS;
}

static int daemon_map_state(apr_pool_t *pconf, pyh_daemon *d)
{
    apr_size_t size = sizeof(pyh_dstate) + (apr_size_t)d->processes;
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return -1;
    d->state = m; /* zeroed: not failing, every slot starting */
    d->state_size = size;
    apr_pool_cleanup_register(pconf, d, daemon_unmap_state,
                              apr_pool_cleanup_null);
    return 0;
}

/* The MPM reaps children between one-second sleeps; a SIGCHLD handler
 * (doing nothing) cuts that sleep short, so a daemon that died or recycled
 * is replaced at once rather than up to a second later. */
static void daemon_on_sigchld(int sig)
{
    (void)sig;
}

int pyh_daemon_start_all(apr_pool_t *pconf, server_rec *s)
{
    struct sigaction sa;
    int i, j;

    daemon_pconf = pconf;
    if (!(daemon_the_book = daemon_book_get(s->process))) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, APR_ENOMEM, s,
                     "PYH0044: no memory for the daemon process records");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* Registered before any other child: pconf runs cleanups in reverse,
     * so APR's own unregistrations have run when ours does. */
    daemon_procs = apr_array_make(pconf, 8, sizeof(pyh_dproc *));
    apr_pool_cleanup_register(pconf, daemon_procs, daemon_parent_cleanup,
                              apr_pool_cleanup_null);
    daemon_adopt_retired(daemon_the_book, pconf);
    if (!pyh_globals.daemons->nelts)
        return OK;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = daemon_on_sigchld;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);
    if (apr_generate_random_bytes(pyh_relay_secret, sizeof(pyh_relay_secret))
        != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     "PYH0044: no random bytes for the daemon relay secret");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    for (i = 0; i < pyh_globals.daemons->nelts; i++) {
        pyh_daemon *d = APR_ARRAY_IDX(pyh_globals.daemons, i, pyh_daemon *);
        daemon_sock *sk;
        if (daemon_make_socket(pconf, d, s) < 0)
            return HTTP_INTERNAL_SERVER_ERROR;
        if (daemon_map_state(pconf, d) < 0
            || !(sk = daemon_sock_add(daemon_the_book, d->socket_path))) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, errno, s,
                         "PYH0044: no memory for daemon group '%s'", d->name);
            close(d->listen_fd);
            d->listen_fd = -1;
            unlink(d->socket_path);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        for (j = 0; j < d->processes; j++) {
            pyh_dproc *dp = apr_pcalloc(pconf, sizeof(*dp));
            dp->d = d;
            dp->slot = j;
            dp->sock = sk;
            sk->refs++;
            *(pyh_dproc **)apr_array_push(daemon_procs) = dp;
            daemon_spawn(dp);
        }
    }
    return OK;
}
