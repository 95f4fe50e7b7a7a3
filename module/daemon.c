/* daemon.c - WSGIDaemonProcess groups. In a daemon process: dropping
 * privileges, starting Python, and serving relayed requests with one
 * dispatcher thread (epoll over the listener and idle connections),
 * worker threads, and a watchdog that enforces timeouts and recycles the
 * process. In Apache's children: a group's sockets and state. Apache's
 * parent (sockets, forking, supervision) is daemon_parent.c. */
#include "daemon.h"
#include "metrics.h"
#include "relay.h"

#include "http_core.h"
#include "http_main.h"
#include "ap_listen.h"
#include "ap_mpm.h"
#include "mpm_common.h"
#include "unixd.h"
#include "apr_strings.h"
#include "apr_thread_proc.h"
#include "apr_thread_cond.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <locale.h>
#include <signal.h>
#include <stdlib.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <pthread.h>
#include <unistd.h>

unsigned char pyh_relay_secret[16];
pyh_daemon *pyh_this_daemon;

/* ==== Apache child ========================================================== */

void pyh_daemon_child_init(apr_pool_t *pchild, server_rec *s)
{
    int i;
    (void)s;
    if (pyh_globals.daemons->nelts)
        signal(SIGCHLD, SIG_DFL); /* the parent's handler is not for us */
    for (i = 0; i < pyh_globals.daemons->nelts; i++) {
        pyh_daemon *d = APR_ARRAY_IDX(pyh_globals.daemons, i, pyh_daemon *);
        if (d->listen_fd >= 0) {
            close(d->listen_fd);
            d->listen_fd = -1;
        }
        d->idle = NULL;
        if (apr_thread_mutex_create(&d->idle_mutex, APR_THREAD_MUTEX_DEFAULT,
                                    pchild) != APR_SUCCESS)
            d->idle_mutex = NULL;
        /* Apache's children only read a group's state. */
        if (d->state)
            mprotect((void *)d->state, d->state_size, PROT_READ);
    }
}

/* A group whose processes cannot start gets its requests answered at once
 * (503, with Retry-After) instead of left to time out on a socket that no
 * process accepts from. */
int pyh_daemon_check_available(request_rec *r, pyh_daemon *d)
{
    const pyh_dstate *st = d->state;
    char cause[sizeof(st->cause)];
    apr_interval_time_t wait;

    if (!st || !st->failing)
        return OK;
    memcpy(cause, st->cause, sizeof(cause));
    cause[sizeof(cause) - 1] = '\0';
    wait = st->retry_at - apr_time_now();
    apr_table_setn(r->err_headers_out, "Retry-After",
                   apr_psprintf(r->pool, "%" APR_TIME_T_FMT,
                                wait > 0 ? apr_time_sec(wait) + 1 : 1));
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                  "PYH0056: daemon group '%s' cannot start its processes "
                  "(%s); answering 503",
                  d->name, cause[0] ? cause : "no reason given");
    return HTTP_SERVICE_UNAVAILABLE;
}

/* ==== daemon process ======================================================== */

enum { DS_RUNNING, DS_RECYCLING, DS_STOPPING, DS_EXIT };

/* Who takes a new connection. Apache's children pool relay connections
 * and reuse them for many requests, so the process that accepts one gets
 * that share of the load until the connection ends. Every process of the
 * group waits on the one listener; each waits before accepting
 * DS_ACCEPT_STEP per request it runs (up to DS_ACCEPT_STEPS), so that the
 * least busy process wins, and one whose threads are all busy leaves the
 * connection to its siblings (taking it after DS_FULL_WAIT only if nobody
 * did, or as soon as one of its threads is free). */
#define DS_ACCEPT_STEP apr_time_from_msec(1)
#define DS_ACCEPT_STEPS 4
#define DS_FULL_WAIT apr_time_from_msec(250)
/* And connections are retired: after a request, one older than
 * DS_CONN_AGE (plus up to as much again of jitter, so that they do not
 * all go at once) gets a goodbye, and Apache opens a new one, which the
 * rule above gives to the least busy process. So a replaced process gets
 * its share within about a second, whatever the load (what gRPC's
 * MAX_CONNECTION_AGE does for the same reason). It costs a reconnect
 * per connection in use and 0.5-1 s, not a system call per request. */
#define DS_CONN_AGE apr_time_from_msec(500)
/* Connections a process already holds bring requests too: when all its
 * threads are busy and none has finished a request for DS_STALLED (slow
 * requests hold them all), a request on a pooled connection is sent back
 * to Apache (the goodbye it retries on) to go to a sibling. A process
 * that is merely saturated by quick requests keeps its queue: it frees a
 * thread sooner than a reconnect would. */
#define DS_STALLED apr_time_from_msec(50)

/* The listener: armed (one-shot), waiting to accept, or off (recycling). */
enum { DS_LISTEN_ARMED, DS_LISTEN_WAIT, DS_LISTEN_OFF };

typedef struct {
    apr_thread_t *thread;
    unsigned long ident;        /* for PyThreadState_SetAsyncExc */
    apr_time_t busy_since;      /* 0: idle */
    pyh_interp *interp;         /* where the request runs */
    int interrupted;
    int active;                 /* this request counts as activity */
} pyh_dworker;

static struct {
    pyh_daemon *d;
    server_rec *s;
    apr_pool_t *pool;
    int epfd, wake[2];
    apr_thread_mutex_t *mutex;  /* guards everything below */
    apr_thread_cond_t *ready_cond;
    pyh_dconn *ready_head, *ready_tail, *all;
    int nconns, nqueued, nbusy;
    int nfresh;                 /* accepted, no request read yet */
    int full_wait;              /* the dispatcher waits for a free thread */
    int state;
    const char *why;            /* reason for recycling */
    apr_time_t started, state_since, last_active;
    apr_time_t last_activity;   /* inactivity-timeout: last_active without
                                   WSGIIgnoreActivity requests */
    apr_int64_t requests;
    int loaded_ok, load_failed;
    pyh_dworker *workers;
    apr_thread_t *watchdog;
    pid_t parent;               /* Apache's parent process */
    pyh_dproc *dp;              /* this process's slot */
    /* The dispatcher's alone: */
    int listen;                 /* DS_LISTEN_* */
    apr_time_t wait_since;      /* the listener became readable */
    uint32_t rng;               /* jitter of connection ages */
    int siblings;               /* other processes could take connections */
} ds;

static PYH_THREAD_LOCAL pyh_dworker *ds_me;
static volatile sig_atomic_t ds_signalled;
static volatile sig_atomic_t ds_cpu_exceeded; /* SIGXCPU: cpu-time-limit */

static void ds_on_signal(int sig)
{
    int saved = errno;
    ssize_t n;
    (void)sig;
    ds_signalled = 1;
    n = write(ds.wake[1], "s", 1);
    (void)n;
    errno = saved;
}

/* cpu-time-limit's soft limit reached: recycle gracefully, as mod_wsgi
 * does; the hard limit (a second later plus shutdown-timeout) kills. */
static void ds_on_xcpu(int sig)
{
    int saved = errno;
    ssize_t n;
    (void)sig;
    ds_cpu_exceeded = 1;
    n = write(ds.wake[1], "c", 1);
    (void)n;
    errno = saved;
}

static void ds_wake(void)
{
    ssize_t n = write(ds.wake[1], "w", 1);
    (void)n;
}

/* Starts recycling (caller holds the mutex): no new connections, idle ones
 * are closed with a goodbye, the process exits once the busy ones are done. */
static void ds_recycle(const char *why)
{
    if (ds.state != DS_RUNNING)
        return;
    ds.state = DS_RECYCLING;
    ds.state_since = apr_time_now();
    ds.why = why;
    pyh_metrics_daemon_recycling(why);
    ds_wake();
}

void pyh_daemon_busy(pyh_interp *in)
{
    if (!ds_me)
        return;
    ds_me->interp = in;
    ds_me->interrupted = 0;
    ds_me->busy_since = apr_time_now();
}

void pyh_daemon_idle(void)
{
    if (!ds_me)
        return;
    ds_me->busy_since = 0;
    ds_me->interp = NULL;
}

void pyh_daemon_active(void)
{
    if (ds_me)
        ds_me->active = 1;
}

void pyh_daemon_loaded(int ok)
{
    if (ok)
        ds.loaded_ok = 1;
    else
        ds.load_failed = 1;
}

static void ds_close_conn(pyh_dconn *dc)
{
    /* caller holds the mutex */
    if (dc->all_prev)
        dc->all_prev->all_next = dc->all_next;
    else
        ds.all = dc->all_next;
    if (dc->all_next)
        dc->all_next->all_prev = dc->all_prev;
    ds.nconns--;
    if (dc->fresh)
        ds.nfresh--;
    pyh_dconn_free(dc);
}

static int ds_arm(pyh_dconn *dc, int op)
{
    struct epoll_event ev;
    ev.events = EPOLLIN | EPOLLONESHOT | EPOLLRDHUP;
    ev.data.ptr = dc;
    return epoll_ctl(ds.epfd, op, dc->fd, &ev);
}

static void ds_goodbye(pyh_dconn *dc)
{
    pyh_dconn_frame(dc, PYH_F_GOODBYE, NULL, 0);
    pyh_dconn_flush(dc);
    epoll_ctl(ds.epfd, EPOLL_CTL_DEL, dc->fd, NULL);
    ds_close_conn(dc);
}

/* xorshift32: jitter, not secrets. */
static uint32_t ds_random(void)
{
    uint32_t x = ds.rng ? ds.rng : 2463534242u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return ds.rng = x;
}

/* Takes one pending connection; 0 when there was none. */
static int ds_accept(void)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    pyh_dconn *dc;
    struct timeval tv;
    apr_interval_time_t age;
    int fd = accept4(ds.d->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return 0;
    /* Only Apache's children (its User) or root may talk to us; the
     * socket's owner and mode already say so, this checks the peer. */
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0
        || (cred.uid != 0 && cred.uid != ap_unixd_config.user_id
            && !(ds.d->socket_user && cred.uid == ds.d->socket_uid))) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, ds.s,
                     "PYH0050: daemon group '%s' refused a connection from "
                     "uid %d",
                     ds.d->name, (int)cred.uid);
        close(fd);
        return 1;
    }
    tv.tv_sec = (time_t)apr_time_sec(ds.d->socket_timeout
                                         ? ds.d->socket_timeout
                                         : ds.s->timeout);
    tv.tv_usec = 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    /* An accepted AF_UNIX socket does not inherit the listener's sizes. */
    pyh_daemon_set_buffers(fd, ds.d, ds.s);
    if (!(dc = pyh_dconn_new(fd))) {
        close(fd);
        return 1;
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, ds.s,
                 "PYH0053: daemon process %d of group '%s' accepted a relay "
                 "connection from pid %d",
                 (int)getpid(), ds.d->name, (int)cred.pid);
    apr_thread_mutex_lock(ds.mutex);
    dc->all_next = ds.all;
    if (ds.all)
        ds.all->all_prev = dc;
    ds.all = dc;
    ds.nconns++;
    dc->state = PYH_DC_IDLE;
    /* Apache connects to send a request: count it as running at once. */
    dc->fresh = 1;
    ds.nfresh++;
    age = DS_CONN_AGE + (apr_interval_time_t)(ds_random() % DS_CONN_AGE);
    dc->retire_at = ds.siblings ? apr_time_now() + age : 0;
    if (ds_arm(dc, EPOLL_CTL_ADD) < 0)
        ds_close_conn(dc);
    apr_thread_mutex_unlock(ds.mutex);
    return 1;
}

/* A request came on a connection: queued for a worker, or, when every
 * thread is held by requests that have not let go for a while, handed
 * back with a goodbye so that Apache sends it again on a new connection,
 * which a sibling with a free thread takes. Only on a pooled connection
 * (a new one was taken for this request: a retry is never sent back). */
static void ds_enqueue(pyh_dconn *dc)
{
    apr_time_t now = apr_time_now();
    int fresh = dc->fresh;
    apr_thread_mutex_lock(ds.mutex);
    if (fresh) {
        dc->fresh = 0;
        ds.nfresh--;
    }
    else if (ds.siblings && ds.state == DS_RUNNING
             && ds.nbusy + ds.nqueued >= ds.d->threads
             && now - ds.last_active > DS_STALLED) {
        ds_goodbye(dc);
        apr_thread_mutex_unlock(ds.mutex);
        return;
    }
    dc->state = PYH_DC_QUEUED;
    dc->queued = now;
    dc->next = NULL;
    if (ds.ready_tail)
        ds.ready_tail->next = dc;
    else
        ds.ready_head = dc;
    ds.ready_tail = dc;
    ds.nqueued++;
    apr_thread_cond_signal(ds.ready_cond);
    apr_thread_mutex_unlock(ds.mutex);
}

/* Requests that waited past queue-timeout for a free thread get 503. */
static void ds_expire_queue(void)
{
    apr_time_t now = apr_time_now();
    pyh_dconn *dc, *prev = NULL, *expired = NULL;

    apr_thread_mutex_lock(ds.mutex);
    for (dc = ds.ready_head; dc;) {
        pyh_dconn *next = dc->next;
        if (now - dc->queued > ds.d->queue_timeout) {
            if (prev)
                prev->next = next;
            else
                ds.ready_head = next;
            if (ds.ready_tail == dc)
                ds.ready_tail = prev;
            ds.nqueued--;
            dc->state = PYH_DC_BUSY;
            dc->next = expired;
            expired = dc;
        }
        else {
            prev = dc;
        }
        dc = next;
    }
    apr_thread_mutex_unlock(ds.mutex);
    while ((dc = expired)) {
        int ok;
        expired = dc->next;
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ds.s,
                     "PYH0051: daemon group '%s': a request waited more than "
                     "queue-timeout for a free thread; answering 503",
                     ds.d->name);
        pyh_metrics_daemon_queue_timeout();
        ok = pyh_relay_refuse(dc, HTTP_SERVICE_UNAVAILABLE) == 0;
        apr_thread_mutex_lock(ds.mutex);
        dc->state = PYH_DC_IDLE;
        if (!ok || ds_arm(dc, EPOLL_CTL_MOD) < 0) {
            epoll_ctl(ds.epfd, EPOLL_CTL_DEL, dc->fd, NULL);
            ds_close_conn(dc);
        }
        apr_thread_mutex_unlock(ds.mutex);
    }
}

static void *APR_THREAD_FUNC ds_worker(apr_thread_t *thread, void *data)
{
    pyh_dworker *w = data;
    pyh_dconn *dc;
    int keep;

    (void)thread;
    ds_me = w;
    w->ident = (unsigned long)pthread_self();
    for (;;) {
        apr_thread_mutex_lock(ds.mutex);
        while (!ds.ready_head && ds.state != DS_EXIT)
            apr_thread_cond_wait(ds.ready_cond, ds.mutex);
        if (!ds.ready_head) {
            apr_thread_mutex_unlock(ds.mutex);
            break;
        }
        dc = ds.ready_head;
        ds.ready_head = dc->next;
        if (!ds.ready_head)
            ds.ready_tail = NULL;
        ds.nqueued--;
        ds.nbusy++;
        dc->state = PYH_DC_BUSY;
        apr_thread_mutex_unlock(ds.mutex);

        pyh_metrics_daemon_busy(1);
        keep = pyh_relay_serve(dc) == 0 && !dc->broken;
        pyh_metrics_daemon_busy(-1);
        pyh_daemon_idle();
        pyh_dconn_idle(dc);

        apr_thread_mutex_lock(ds.mutex);
        ds.nbusy--;
        ds.requests++;
        ds.last_active = apr_time_now();
        if (w->active)
            ds.last_activity = ds.last_active;
        w->active = 0;
        if (ds.d->maximum_requests && ds.requests >= ds.d->maximum_requests)
            ds_recycle("maximum-requests reached");
        dc->state = PYH_DC_IDLE;
        /* A thread is free again: the dispatcher may take the connection
         * it left to the siblings (the only wake-up a request causes, and
         * only when every thread was busy as a connection came). */
        if (ds.full_wait) {
            ds.full_wait = 0;
            ds_wake();
        }
        if (keep && (ds.state == DS_RECYCLING
                     || (dc->retire_at && ds.last_active >= dc->retire_at))) {
            ds_goodbye(dc);
        }
        else if (!keep || ds_arm(dc, EPOLL_CTL_MOD) < 0) {
            epoll_ctl(ds.epfd, EPOLL_CTL_DEL, dc->fd, NULL);
            ds_close_conn(dc);
        }
        if (ds.state != DS_RUNNING)
            ds_wake();
        apr_thread_mutex_unlock(ds.mutex);
    }
    /* Returning ends the thread as apr_thread_exit() would, without the
     * pthread_exit() unwinding that ASan misreads (sigaltstack). */
    return NULL;
}

static long ds_rss_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = 0;
    fclose(f);
    return rss * sysconf(_SC_PAGESIZE);
}

/* Interrupts requests past request-timeout with a TimeoutError raised in
 * their thread; one that still runs after twice the timeout (stuck in C,
 * e.g. a long sleep) recycles the process. */
static void ds_check_requests(apr_time_t now)
{
    int i;
    for (i = 0; i < ds.d->threads; i++) {
        pyh_dworker *w = &ds.workers[i];
        apr_time_t since = w->busy_since;
        pyh_interp *in = w->interp;
        if (!since || now - since < ds.d->request_timeout || !in)
            continue;
        if (!w->interrupted) {
            w->interrupted = 1;
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, ds.s,
                         "PYH0052: daemon group '%s': a request ran past "
                         "request-timeout (%" APR_TIME_T_FMT " s); raising "
                         "TimeoutError in its thread",
                         ds.d->name, apr_time_sec(ds.d->request_timeout));
            /* The worker marks itself idle with the GIL held, so under
             * the GIL this cannot hit its next request. */
            if ((in = pyh_interp_acquire(in->name, ds.s))) {
                if (w->busy_since == since && w->interp == in)
                    PyThreadState_SetAsyncExc(w->ident, PyExc_TimeoutError);
                pyh_interp_release(in);
            }
        }
        else if (now - since > 2 * ds.d->request_timeout) {
            apr_thread_mutex_lock(ds.mutex);
            ds_recycle("a request is stuck past request-timeout");
            apr_thread_mutex_unlock(ds.mutex);
        }
    }
}

static void *APR_THREAD_FUNC ds_watchdog(apr_thread_t *thread, void *data)
{
    pyh_daemon *d = ds.d;
    (void)thread;
    (void)data;
    while (ds.state != DS_EXIT) {
        apr_time_t now = apr_time_now();
        const char *why = NULL;
        apr_sleep(apr_time_from_msec(100));
        if (d->request_timeout)
            ds_check_requests(now);
        apr_thread_mutex_lock(ds.mutex);
        if (d->restart_interval && now - ds.started > d->restart_interval)
            why = "restart-interval reached";
        else if (d->inactivity_timeout && !ds.nbusy && !ds.nqueued
                 && now - ds.last_activity > d->inactivity_timeout)
            why = "inactivity-timeout reached";
        else if (d->memory_limit && ds_rss_bytes() > d->memory_limit)
            why = "memory-limit exceeded";
        else if (d->startup_timeout && !ds.loaded_ok && ds.load_failed
                 && now - ds.started > d->startup_timeout)
            why = "startup-timeout: the WSGI script did not load";
        if (why)
            ds_recycle(why);
        pyh_metrics_daemon_queued(ds.nqueued);
        apr_thread_mutex_unlock(ds.mutex);
    }
    return NULL; /* not apr_thread_exit(): see ds_worker */
}

/* Records why this process could not start, for the parent's log and
 * for the 503s Apache's children answer while the group keeps failing. */
static void ds_cause(int err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void ds_cause(int err, const char *fmt, ...)
{
    pyh_dstate *st = ds.d ? ds.d->state : NULL;
    char errbuf[120];
    apr_size_t n;
    va_list ap;
    if (!st)
        return;
    va_start(ap, fmt);
    n = (apr_size_t)apr_vsnprintf(st->cause, sizeof(st->cause) - 1, fmt, ap);
    va_end(ap);
    if (err && n < sizeof(st->cause) - 1)
        apr_snprintf(st->cause + n, sizeof(st->cause) - 1 - n, ": %s",
                     apr_strerror(APR_FROM_OS_ERROR(err), errbuf,
                                  sizeof(errbuf)));
}

/* Drops to the group's user. Every call is checked: a daemon that could
 * not shed root must not run (CVE-2014-0240, CVE-2014-8583). */
static int ds_drop_privileges(pyh_daemon *d)
{
    const char *step;
    if (geteuid() != 0) {
        if (geteuid() == d->uid)
            return 0;
        step = "switch user: Apache was not started as root";
        goto fail;
    }
    if (d->uid == 0) {
        step = "run as root (set user= to an unprivileged user)";
        goto fail;
    }
    step = "setgid";
    if (setgid(d->gid) < 0)
        goto fail;
    step = "set supplementary groups";
    if (d->groups && d->groups->nelts) {
        if (setgroups((size_t)d->groups->nelts, (gid_t *)d->groups->elts) < 0)
            goto fail;
    }
    else if (initgroups(d->user, d->gid) < 0) {
        goto fail;
    }
    step = "setuid";
    if (setuid(d->uid) < 0)
        goto fail;
    step = "verify the user switch";
    if (getuid() != d->uid || geteuid() != d->uid || getgid() != d->gid
        || getegid() != d->gid || setuid(0) == 0)
        goto fail;
    return 0;
fail:
    ds_cause(errno, "user '%s' could not %s", d->user, step);
    ap_log_error(APLOG_MARK, APLOG_CRIT, errno, ds.s,
                 "PYH0045: daemon group '%s' (user '%s') could not %s; the "
                 "process will not run",
                 d->name, d->user, step);
    return -1;
}

static void ds_set_title(pyh_daemon *d)
{
    const char *name = d->display_name;
    process_rec *proc = ds.s->process;
    if (!name)
        return;
    prctl(PR_SET_NAME, name, 0, 0, 0);
    /* argv's strings are contiguous: overwrite them for ps(1). */
    if (proc->argc > 0 && proc->argv[0]) {
        char *start = (char *)proc->argv[0];
        char *end = start + strlen(start);
        int i;
        for (i = 1; i < proc->argc; i++)
            if (proc->argv[i] == end + 1)
                end = (char *)proc->argv[i] + strlen(proc->argv[i]);
        if (end > start) {
            apr_size_t room = (apr_size_t)(end - start);
            memset(start, 0, room);
            memcpy(start, name, strlen(name) < room ? strlen(name) : room);
        }
    }
}

/* This process could not start: the parent counts failed starts in a row
 * and backs off (see daemon_note_death). */
static void ds_fail_exit(void) __attribute__((noreturn));
static void ds_fail_exit(void)
{
    pyh_dstate *st = ds.d ? ds.d->state : NULL;
    if (st) /* every caller said why first (ds_cause) */
        st->slot[ds.dp->slot] = DSLOT_FAILED;
    _exit(1);
}

/* A slot whose starts keep failing waits before it tries again (the
 * parent said how long); a stop, or the parent gone, ends the wait. */
static void ds_backoff(apr_interval_time_t delay)
{
    apr_time_t until = apr_time_now() + delay;
    while (apr_time_now() < until) {
        if (ds_signalled || getppid() != ds.parent)
            _exit(0);
        apr_sleep(apr_time_from_msec(100));
    }
}

/* Started: the group serves. The state goes out of this process's reach:
 * the app runs here from now on. */
static void ds_ready(void)
{
    pyh_daemon *d = ds.d;
    pyh_dstate *st = d->state;
    if (!st)
        return;
    if (st->failing)
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, ds.s,
                     "PYH0058: daemon group '%s' serves again after %d "
                     "failed starts",
                     d->name, st->fails);
    st->slot[ds.dp->slot] = DSLOT_READY;
    st->fails = 0;
    st->failing = 0;
    munmap((void *)st, d->state_size);
    d->state = NULL;
}

/* cpu-time-limit and virtual-memory-limit (mod_wsgi): RLIMIT_CPU with a
 * hard limit a second plus shutdown-timeout above the soft one (SIGXCPU
 * recycles first), RLIMIT_AS. A limit that cannot be set fails the start:
 * the admin asked for a bound the process would not have. */
static int ds_set_limits(pyh_daemon *d)
{
    struct rlimit rl;
    if (d->cpu_time_limit > 0) {
        rl.rlim_cur = (rlim_t)d->cpu_time_limit;
        rl.rlim_max = rl.rlim_cur + 1
                      + (rlim_t)apr_time_sec(d->shutdown_timeout);
        if (setrlimit(RLIMIT_CPU, &rl) < 0)
            goto fail;
    }
    if (d->virtual_memory_limit > 0) {
        rl.rlim_cur = rl.rlim_max = (rlim_t)d->virtual_memory_limit;
        if (setrlimit(RLIMIT_AS, &rl) < 0)
            goto fail;
    }
    return 0;
fail:
    ds_cause(errno, "could not set its resource limits");
    ap_log_error(APLOG_MARK, APLOG_CRIT, errno, ds.s,
                 "PYH0126: daemon group '%s': cannot set cpu-time-limit=%d / "
                 "virtual-memory-limit=%" APR_INT64_T_FMT,
                 d->name, d->cpu_time_limit, d->virtual_memory_limit);
    return -1;
}

static int ds_setup_process(pyh_dproc *dp)
{
    pyh_daemon *d = dp->d;
    struct sigaction sa;
    sigset_t none;
    int i;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = ds_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = ds_on_xcpu;
    sigaction(SIGXCPU, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);

    ap_close_listeners();
    for (i = 0; i < pyh_globals.daemons->nelts; i++) {
        pyh_daemon *o = APR_ARRAY_IDX(pyh_globals.daemons, i, pyh_daemon *);
        if (o == d)
            continue;
        if (o->listen_fd >= 0) {
            close(o->listen_fd);
            o->listen_fd = -1;
        }
        if (o->state) {
            munmap((void *)o->state, o->state_size);
            o->state = NULL;
        }
    }
    ds_set_title(d);
    if (dp->delay > 0)
        ds_backoff(dp->delay);
    /* Before the user switch: only root may raise the priority. */
    if (d->cpu_priority && setpriority(PRIO_PROCESS, 0, d->cpu_priority) < 0)
        ap_log_error(APLOG_MARK, APLOG_WARNING, errno, ds.s,
                     "PYH0126: daemon group '%s': cannot set cpu-priority=%d;"
                     " the process keeps its priority",
                     d->name, d->cpu_priority);
    /* chroot= (mod_wsgi): before the user switch, which loses the right
     * to; Python, the scripts and the socket must be inside. */
    if (d->chroot && (chroot(d->chroot) < 0 || chdir("/") < 0)) {
        ds_cause(errno, "cannot chroot to '%s'", d->chroot);
        ap_log_error(APLOG_MARK, APLOG_CRIT, errno, ds.s,
                     "PYH0131: daemon group '%s': cannot chroot to '%s'",
                     d->name, d->chroot);
        return -1;
    }
    if (ds_drop_privileges(d) < 0)
        return -1;
    if (ds_set_limits(d) < 0)
        return -1;
    /* After the user switch: changing credentials clears it. And if the
     * parent is already gone, there is nobody to serve. */
    prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
    if (getppid() != ds.parent)
        _exit(0);
    if (d->umask >= 0)
        umask((mode_t)d->umask);
    /* The user's home is only a default: a system user's often does not
     * exist (nobody: /nonexistent); then the daemon works in /. */
    if (d->home && !d->home_given && chdir(d->home) < 0 && chdir("/") == 0) {
        ap_log_error(APLOG_MARK, APLOG_INFO, errno, ds.s,
                     "PYH0046: daemon group '%s': user %s's home '%s' is not "
                     "usable; working in /",
                     d->name, d->user, d->home);
    }
    else if (d->home && d->home_given && chdir(d->home) < 0) {
        ds_cause(errno, "cannot change to home directory '%s'", d->home);
        ap_log_error(APLOG_MARK, APLOG_CRIT, errno, ds.s,
                     "PYH0046: daemon group '%s': cannot change to home "
                     "directory '%s'",
                     d->name, d->home);
        return -1;
    }
    if (d->lang)
        setenv("LANG", d->lang, 1);
    if (d->locale && !setlocale(LC_ALL, d->locale))
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ds.s,
                     "PYH0046: daemon group '%s': locale '%s' is not "
                     "available",
                     d->name, d->locale);
    if (pipe2(ds.wake, O_CLOEXEC | O_NONBLOCK) < 0
        || (ds.epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        ds_cause(errno, "no pipe or epoll descriptor");
        return -1;
    }
    return 0;
}

static int ds_start_threads(void)
{
    apr_threadattr_t *attr;
    int i;
    if (apr_thread_mutex_create(&ds.mutex, APR_THREAD_MUTEX_DEFAULT, ds.pool)
            != APR_SUCCESS
        || apr_thread_cond_create(&ds.ready_cond, ds.pool) != APR_SUCCESS
        || apr_threadattr_create(&attr, ds.pool) != APR_SUCCESS)
        return -1;
    /* stack-size (mod_wsgi): deep recursion in the app needs more, many
     * threads in a small address space less. */
    if (ds.d->stack_size
        && apr_threadattr_stacksize_set(attr, ds.d->stack_size)
               != APR_SUCCESS)
        return -1;
    ds.workers = apr_pcalloc(ds.pool, sizeof(pyh_dworker) * ds.d->threads);
    for (i = 0; i < ds.d->threads; i++)
        if (apr_thread_create(&ds.workers[i].thread, attr, ds_worker,
                              &ds.workers[i], ds.pool) != APR_SUCCESS)
            return -1;
    return apr_thread_create(&ds.watchdog, attr, ds_watchdog, NULL, ds.pool)
                   == APR_SUCCESS ? 0 : -1;
}

static int ds_arm_listener(int op)
{
    struct epoll_event ev;
    ev.events = EPOLLIN | EPOLLONESHOT;
    ev.data.ptr = NULL;
    return epoll_ctl(ds.epfd, op, ds.d->listen_fd, &ev);
}

/* The dispatcher's epoll set: the wake pipe (data: &ds.wake), the
 * listening socket (data: NULL) and the connections, the last two armed
 * one-shot. */
static void ds_watch(void)
{
    struct epoll_event ev;
    ev.events = EPOLLIN;
    ev.data.ptr = &ds.wake;
    epoll_ctl(ds.epfd, EPOLL_CTL_ADD, ds.wake[0], &ev);
    ds_arm_listener(EPOLL_CTL_ADD);
    ds.listen = DS_LISTEN_ARMED;
    ds.siblings = ds.d->processes > 1;
    ds.rng = (uint32_t)getpid() ^ (uint32_t)apr_time_now();
}

/* How much longer to wait before taking a pending connection (see
 * DS_ACCEPT_STEP; caller holds the mutex); 0: take it now. */
static apr_interval_time_t ds_accept_wait(apr_time_t now)
{
    int running = ds.nbusy + ds.nqueued + ds.nfresh;
    apr_time_t at;
    if (!ds.siblings)
        return 0;
    ds.full_wait = running >= ds.d->threads;
    if (ds.full_wait)
        at = ds.wait_since + DS_FULL_WAIT;
    else
        at = ds.wait_since + DS_ACCEPT_STEP * (running < DS_ACCEPT_STEPS
                                                   ? running
                                                   : DS_ACCEPT_STEPS);
    return at > now ? at - now : 0;
}

/* The listener is readable (and disarmed): accepts when it is this
 * process's turn, then arms it again, which reports at once if more
 * connections wait. Returns the wait left in ms, or -1: not waiting. */
static int ds_accept_turn(void)
{
    apr_interval_time_t wait;
    int recycling;
    apr_thread_mutex_lock(ds.mutex);
    wait = ds_accept_wait(apr_time_now());
    recycling = ds.state == DS_RECYCLING;
    apr_thread_mutex_unlock(ds.mutex);
    if (recycling)
        return -1; /* the listener is about to go */
    if (wait > 0)
        return (int)((wait + 999) / 1000);
    /* Alone, take them all; with siblings one at a time, each at its
     * turn. A sibling may have taken it meanwhile: accept finds none. */
    while (ds_accept() && !ds.siblings)
        ;
    ds.listen = DS_LISTEN_ARMED;
    if (ds_arm_listener(EPOLL_CTL_MOD) < 0)
        ds.listen = DS_LISTEN_OFF;
    return -1;
}

static void ds_handle_events(struct epoll_event *evs, int n)
{
    char drain[64];
    int i;
    for (i = 0; i < n; i++) {
        if (evs[i].data.ptr == &ds.wake) {
            while (read(ds.wake[0], drain, sizeof(drain)) > 0)
                ;
        }
        else if (!evs[i].data.ptr) {
            if (ds.listen == DS_LISTEN_ARMED) {
                ds.listen = DS_LISTEN_WAIT;
                ds.wait_since = apr_time_now();
            }
        }
        else {
            ds_enqueue(evs[i].data.ptr);
        }
    }
}

/* A signal, or Apache's parent gone, means stop. */
static void ds_check_stop(void)
{
    if (getppid() != ds.parent)
        ds_signalled = 1; /* Apache's parent died: stop as if told to */
    if (ds_cpu_exceeded && ds.state == DS_RUNNING) {
        apr_thread_mutex_lock(ds.mutex);
        ds_recycle("cpu-time-limit reached");
        apr_thread_mutex_unlock(ds.mutex);
    }
    if (ds_signalled && ds.state != DS_STOPPING) {
        apr_thread_mutex_lock(ds.mutex);
        ds.state = DS_STOPPING;
        ds.state_since = apr_time_now();
        apr_thread_mutex_unlock(ds.mutex);
    }
}

/* One step of recycling (caller holds the mutex): stop listening, say
 * goodbye to idle connections; 1 when the process may leave. */
static int ds_recycling_step(void)
{
    pyh_dconn *dc, *next;
    if (ds.listen != DS_LISTEN_OFF) {
        epoll_ctl(ds.epfd, EPOLL_CTL_DEL, ds.d->listen_fd, NULL);
        ds.listen = DS_LISTEN_OFF;
        ds.full_wait = 0;
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, ds.s,
                     "PYH0047: daemon process %d of group '%s' is "
                     "recycling: %s",
                     (int)getpid(), ds.d->name, ds.why);
    }
    for (dc = ds.all; dc; dc = next) {
        next = dc->all_next;
        if (dc->state == PYH_DC_IDLE)
            ds_goodbye(dc);
    }
    return (!ds.nbusy && !ds.nqueued)
           || apr_time_now() - ds.state_since > ds.d->graceful_timeout;
}

/* Once not running: 1 when the dispatcher may return. */
static int ds_winding_down(void)
{
    int leave = 0;
    apr_thread_mutex_lock(ds.mutex);
    if (ds.state == DS_RECYCLING)
        leave = ds_recycling_step();
    else if (ds.state == DS_STOPPING)
        /* Old children may still relay requests on their connections
         * (a graceful restart); leave when they have all closed. */
        leave = !ds.nconns
                || apr_time_now() - ds.state_since > ds.d->graceful_timeout;
    apr_thread_mutex_unlock(ds.mutex);
    return leave;
}

/* The dispatcher: accepts, and hands readable connections to workers. */
static void ds_dispatch(void)
{
    struct epoll_event evs[64];

    ds_watch();
    for (;;) {
        int timeout = ds.d->queue_timeout || ds.state != DS_RUNNING ? 100 : 1000;
        int n;
        if (ds.listen == DS_LISTEN_WAIT) {
            int wait = ds_accept_turn();
            if (wait >= 0 && wait < timeout)
                timeout = wait;
        }
        n = epoll_wait(ds.epfd, evs, 64, timeout);
        ds_handle_events(evs, n);
        ds_check_stop();
        if (ds.d->queue_timeout && ds.ready_head)
            ds_expire_queue();
        if (ds.state != DS_RUNNING && ds_winding_down())
            return;
    }
}

void pyh_daemon_main(pyh_dproc *dp, apr_pool_t *pconf)
{
    pyh_daemon *d = dp->d;
    apr_status_t rv;
    int i, busy;

    memset(&ds, 0, sizeof(ds));
    ds.wake[0] = ds.wake[1] = -1; /* a signal before the pipe: no write */
    ds.parent = getppid();
    ds.dp = dp;
    ds.d = d;
    ds.s = ap_server_conf;
    pyh_this_daemon = d;
    pyh_metrics_daemon_init(dp);
    ds.started = ds.last_active = ds.last_activity = apr_time_now();
    ds.state = DS_RUNNING;
    if (apr_pool_create(&ds.pool, pconf) != APR_SUCCESS) {
        ds_cause(0, "no memory");
        ds_fail_exit();
    }
    if (ds_setup_process(dp) < 0)
        ds_fail_exit();
    if (pyh_interp_process_init(ds.pool, ds.s, d) < 0) {
        ds_cause(0, "Python could not start (python-home '%s'; the log "
                    "says more)",
                 d->python_home ? d->python_home
                 : pyh_globals.python_home ? pyh_globals.python_home
                                           : PYH_PYTHON_HOME);
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, ds.s,
                     "PYH0048: Python could not start in daemon process %d "
                     "of group '%s'",
                     (int)getpid(), d->name);
        ds_fail_exit();
    }
    /* ASGI lifespan startup before the first accept: requests wait in
     * the listen backlog meanwhile, and never see an app half started. */
    pyh_asgi_daemon_init(ds.pool, ds.s, d);
    /* inactivity-timeout counts from here: starting is not idling */
    ds.last_active = ds.last_activity = apr_time_now();
    if (ds_start_threads() < 0) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, ds.s,
                     "PYH0048: daemon group '%s': could not start threads",
                     d->name);
        ds_cause(0, "could not start threads");
        ds_fail_exit();
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, ds.s,
                 "PYH0049: daemon process %d of group '%s' ready (%d threads, "
                 "user %s)",
                 (int)getpid(), d->name, d->threads, d->user);
    ds_ready();
    ds_dispatch();

    /* Stop the workers; if one is stuck in the app, Python cannot be
     * finalized safely: leave without it. */
    apr_thread_mutex_lock(ds.mutex);
    ds.state = DS_EXIT;
    busy = ds.nbusy;
    apr_thread_cond_broadcast(ds.ready_cond);
    apr_thread_mutex_unlock(ds.mutex);
    if (busy) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ds.s,
                     "PYH0047: daemon process %d of group '%s' exits with %d "
                     "request(s) still running",
                     (int)getpid(), d->name, busy);
        _exit(0);
    }
    for (i = 0; i < d->threads; i++)
        apr_thread_join(&rv, ds.workers[i].thread);
    apr_thread_join(&rv, ds.watchdog);
    apr_pool_destroy(ds.pool); /* finalizes Python */
    _exit(0);
}
