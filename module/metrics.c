/* metrics.c - shared-memory counters for every Apache child and daemon
 * process, the Prometheus endpoint (SetHandler pyhost-metrics) that adds
 * them up, and the hooks the request path and the daemons call. */
#include "metrics.h"
#include "daemon.h"

#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"
#include "ap_mpm.h"
#include "scoreboard.h"
#include "mod_status.h"
#include "apr_strings.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* The segment outlives a configuration (counters only go up across
 * graceful restarts): it is found again through the process pool's
 * userdata, as daemon_parent.c finds its book. It holds no pointer into
 * this module. The key carries a layout number: another layout starts a
 * segment of its own. */
#define METRICS_KEY "pyhost-metrics/2"
#define METRICS_MOUNTS 64  /* mount 0: requests with no mount (SetHandler) */
#define METRICS_GROUPS 32
#define METRICS_BUCKETS 14 /* the last is +Inf */
#define METRICS_CLASSES 5  /* 1xx..5xx */
#define METRICS_PROTOS 3   /* wsgi, asgi, websocket */
#define METRICS_DAEMON_SLOTS 256
#define METRICS_GC_GENERATIONS 3

static const apr_interval_time_t metrics_bounds[METRICS_BUCKETS - 1] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000};
static const char *const metrics_bound_names[METRICS_BUCKETS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
    "0.5", "1", "2.5", "5", "10", "+Inf"};
static const char *const metrics_protos[METRICS_PROTOS] = {"wsgi", "asgi",
                                                           "websocket"};
static const char *const metrics_lifespan_states[PYH_MLS_COUNT] = {
    "none", "starting", "ready", "failed", "stopped"};
static const char *const metrics_causes[PYH_MC_COUNT] = {
    "none", "exit", "signal", "maximum-requests", "restart-interval",
    "memory-limit", "request-timeout", "inactivity", "start-failure"};

typedef struct {
    uint64_t requests[METRICS_PROTOS][METRICS_CLASSES];
    uint64_t buckets[METRICS_BUCKETS]; /* not cumulative */
    uint64_t app_us;
    int32_t lifespan; /* PYH_MLS_*: this process's lifespan of the app */
} metrics_mount;

/* One process: an Apache child by its scoreboard slot, or a daemon
 * process by group and index. Every field is changed with relaxed atomic
 * adds or stores: several processes can share a child slot across a
 * graceful restart, and a process's threads share its slot. */
typedef struct {
    int32_t used;              /* 1: child slot, 2: daemon slot */
    int32_t group;             /* daemon group index in the segment */
    int32_t index;             /* child slot or daemon process index */
    int32_t pid;               /* the latest process in the slot */
    int32_t threads;           /* configured threads of that process */
    int32_t pending_cause;     /* daemon: why it is about to exit */
    int64_t in_flight;         /* requests in the handler / daemon busy */
    int64_t queued;            /* daemon: requests waiting for a thread */
    int64_t websockets_open;   /* ASGI WebSockets (hook for websocket.c) */
    int64_t loop_lag_us;       /* ASGI loop's last lag sample + 1; 0: none */
    int32_t interpreters;      /* Python interpreters alive */
    uint64_t gc_collections[METRICS_GC_GENERATIONS];
    metrics_mount mounts[METRICS_MOUNTS];
} metrics_slot;

typedef struct {
    char name[64];
    int32_t first_slot, nslots;
    uint64_t restarts[PYH_MC_COUNT]; /* the parent alone writes */
    uint64_t queue_timeouts;         /* 503 from queue-timeout */
    uint64_t request_timeouts;       /* 504 from request-timeout */
} metrics_group;

typedef struct {
    uint32_t magic;
    int32_t nchildren;         /* ServerLimit when made */
    int32_t nslots;            /* children + daemon slots */
    int32_t daemon_used;       /* daemon slots handed out */
    int32_t nmounts, ngroups;
    char mounts[METRICS_MOUNTS][128];
    int32_t mount_proto[METRICS_MOUNTS];
    metrics_group groups[METRICS_GROUPS];
    metrics_slot slots[];
} metrics_seg;

#define METRICS_MAGIC 0x50594d31u

static metrics_seg *metrics_seg_p;     /* this configuration's view */
static metrics_slot *metrics_me;       /* a daemon's own slot */
static metrics_slot *volatile metrics_child; /* a child's, found lazily */
static int metrics_group_of[METRICS_GROUPS]; /* pyh_daemon index -> seg */
static int metrics_off;                /* PyhostMetrics Off */
static pid_t metrics_pid;              /* an Apache child's, at child_init */

/* What this process knows before its slot is (an Apache child finds its
 * slot only once the parent has put its pid in the scoreboard, but Python,
 * its GC and its ASGI lifespans start in child_init): kept here, then
 * handed to the slot by metrics_publish. Every process starts from the
 * parent's zeros (no Python runs in the parent). */
static struct {
    uint64_t gc_pending[METRICS_GC_GENERATIONS]; /* not yet in the slot */
    int32_t interpreters;
    int64_t loop_lag_us;                         /* as in the slot */
    int32_t lifespan[METRICS_MOUNTS];
    uint32_t gen;                                /* bumped after each change */
} metrics_local;

/* An ASGI mount's script, to find the mounts a lifespan state is for. */
typedef struct {
    const char *script;
    int mount;
} metrics_script;
static apr_array_header_t *metrics_scripts;

#define MET_ADD(field, n) __atomic_fetch_add(&(field), (n), __ATOMIC_RELAXED)
#define MET_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)
#define MET_SET(field, v) __atomic_store_n(&(field), (v), __ATOMIC_RELAXED)

static metrics_seg *metrics_seg_make(process_rec *process)
{
    void *found = NULL;
    int children = 0;
    apr_size_t size;
    metrics_seg *seg;

    if (apr_pool_userdata_get(&found, METRICS_KEY, process->pool)
            == APR_SUCCESS
        && found)
        return found;
    if (ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &children) != APR_SUCCESS
        || children < 1)
        children = 1;
    /* ServerLimit cannot change at a graceful restart, so the children's
     * part is sized once; daemon groups get fixed room (a group that does
     * not fit is not counted, and says so). Pages nobody touches cost
     * nothing. */
    size = sizeof(metrics_seg)
           + (apr_size_t)(children + METRICS_DAEMON_SLOTS) * sizeof(metrics_slot);
    seg = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
               -1, 0);
    if (seg == MAP_FAILED)
        return NULL;
    seg->magic = METRICS_MAGIC;
    seg->nchildren = children;
    seg->nslots = children + METRICS_DAEMON_SLOTS;
    seg->nmounts = 1; /* mount 0: no mount */
    /* No cleanup: the mapping ends with the parent, after every child. */
    if (apr_pool_userdata_set(seg, METRICS_KEY, apr_pool_cleanup_null,
                              process->pool) != APR_SUCCESS) {
        munmap(seg, size);
        return NULL;
    }
    return seg;
}

/* A configured mount's index, kept by its URL prefix across restarts. */
static int metrics_mount_index(metrics_seg *seg, const pyh_alias *a)
{
    int i;
    for (i = 1; i < seg->nmounts; i++)
        if (!strcmp(seg->mounts[i], a->location))
            return i;
    if (seg->nmounts >= METRICS_MOUNTS || strlen(a->location) >= 128)
        return 0;
    apr_cpystrn(seg->mounts[i], a->location, sizeof(seg->mounts[i]));
    seg->mount_proto[i] = a->protocol;
    seg->nmounts++;
    return i;
}

static int metrics_group_index(metrics_seg *seg, const pyh_daemon *d)
{
    int i;
    metrics_group *g;
    for (i = 0; i < seg->ngroups; i++) {
        g = &seg->groups[i];
        if (!strcmp(g->name, d->name) && g->nslots >= d->processes)
            return i;
    }
    if (seg->ngroups >= METRICS_GROUPS || strlen(d->name) >= sizeof(g->name)
        || seg->daemon_used + d->processes > METRICS_DAEMON_SLOTS)
        return -1;
    g = &seg->groups[seg->ngroups];
    apr_cpystrn(g->name, d->name, sizeof(g->name));
    g->first_slot = seg->nchildren + seg->daemon_used;
    g->nslots = d->processes;
    seg->daemon_used += d->processes;
    /* A group that grew at a restart gets new slots under the same
     * name; the exposition adds up groups of one name. */
    return seg->ngroups++;
}

int pyh_metrics_post_config(apr_pool_t *pconf, server_rec *s)
{
    metrics_seg *seg = metrics_seg_make(s->process);
    server_rec *v;
    int i;

    metrics_seg_p = seg;
    metrics_me = NULL;
    metrics_child = NULL;
    if (!seg) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, errno, s,
                     "PYH0300: no shared memory for the metrics; pyhost "
                     "serves without them");
        return OK;
    }
    metrics_scripts = apr_array_make(pconf, 4, sizeof(metrics_script));
    for (v = s; v; v = v->next) {
        pyh_server_conf *sc =
            ap_get_module_config(v->module_config, &pyhost_module);
        for (i = 0; i < sc->aliases->nelts; i++) {
            pyh_alias *a = &APR_ARRAY_IDX(sc->aliases, i, pyh_alias);
            a->metrics_mount = metrics_mount_index(seg, a);
            if (a->protocol == PYH_PROTO_ASGI && !a->regexp && a->script
                && a->metrics_mount) {
                metrics_script *ms = apr_array_push(metrics_scripts);
                ms->script = a->script;
                ms->mount = a->metrics_mount;
            }
        }
    }
    for (i = 0; i < pyh_globals.daemons->nelts && i < METRICS_GROUPS; i++) {
        pyh_daemon *d = APR_ARRAY_IDX(pyh_globals.daemons, i, pyh_daemon *);
        metrics_group_of[i] = metrics_group_index(seg, d);
        if (metrics_group_of[i] < 0)
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                         "PYH0301: no room left in the metrics for daemon "
                         "group '%s'; its processes are not counted until "
                         "Apache is stopped and started",
                         d->name);
    }
    return OK;
}

/* Hands what this process counted before it knew its slot to the slot,
 * and sets the slot's gauges from this process (a slot may have held an
 * earlier process). Idempotent. The pending counts are taken with an
 * exchange; the gauges are copied again if they changed during the copy,
 * so a publisher that read an old value (a thread descheduled halfway)
 * cannot leave it behind: every change bumps gen, then publishes. */
static void metrics_publish(metrics_slot *me)
{
    int g, m;
    uint32_t gen;
    for (g = 0; g < METRICS_GC_GENERATIONS; g++) {
        uint64_t n = __atomic_exchange_n(&metrics_local.gc_pending[g], 0,
                                         __ATOMIC_RELAXED);
        if (n)
            MET_ADD(me->gc_collections[g], n);
    }
    do {
        gen = __atomic_load_n(&metrics_local.gen, __ATOMIC_SEQ_CST);
        MET_SET(me->interpreters, MET_GET(metrics_local.interpreters));
        MET_SET(me->loop_lag_us, MET_GET(metrics_local.loop_lag_us));
        for (m = 0; m < METRICS_MOUNTS; m++)
            MET_SET(me->mounts[m].lifespan,
                    MET_GET(metrics_local.lifespan[m]));
    } while (gen != __atomic_load_n(&metrics_local.gen, __ATOMIC_SEQ_CST));
}

/* After a change to metrics_local's gauges. */
static void metrics_local_changed(void);

static metrics_slot *metrics_child_adopt(int i)
{
    metrics_slot *me = &metrics_seg_p->slots[i];
    int limit = 0;
    if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &limit) != APR_SUCCESS || limit < 1)
        limit = 1;
    MET_SET(me->threads, limit);
    MET_SET(me->index, i);
    MET_SET(me->pid, (int32_t)metrics_pid);
    MET_SET(me->used, 1);
    metrics_publish(me);
    metrics_child = me;
    return me;
}

/* This process's slot outside a request (its GC, interpreters, ASGI loop):
 * a daemon's own, or an Apache child's once the parent has written the
 * child's pid into the scoreboard. NULL: not yet (or no metrics). */
static metrics_slot *metrics_proc_slot(void)
{
    int i;
    if (metrics_me)
        return metrics_me;
    if (metrics_child)
        return metrics_child;
    if (metrics_off || !metrics_seg_p || !metrics_pid || !ap_scoreboard_image)
        return NULL;
    for (i = 0; i < metrics_seg_p->nchildren; i++) {
        process_score *ps = ap_get_scoreboard_process(i);
        if (ps && ps->pid == metrics_pid)
            return metrics_child_adopt(i);
    }
    return NULL;
}

/* An Apache child's slot: its scoreboard slot, found on its first request
 * (the worker's scoreboard entry lies in the slot's row). */
static metrics_slot *metrics_child_slot(request_rec *r)
{
    metrics_slot *me = metrics_child;
    worker_score *ws;
    int limit = 0, i;

    if (me || !metrics_seg_p)
        return me;
    if (ap_mpm_query(AP_MPMQ_HARD_LIMIT_THREADS, &limit) != APR_SUCCESS)
        limit = 1;
    ws = r->connection->sbh ? ap_get_scoreboard_worker(r->connection->sbh)
                            : NULL;
    for (i = 0; i < metrics_seg_p->nchildren; i++) {
        process_score *ps = ap_get_scoreboard_process(i);
        if ((ws && ws >= ap_scoreboard_image->servers[i]
             && ws < ap_scoreboard_image->servers[i] + limit)
            || (!ws && ps && ps->pid == metrics_pid))
            break;
    }
    if (i == metrics_seg_p->nchildren)
        return NULL;
    return metrics_child_adopt(i);
}

void pyh_metrics_begin(pyh_mreq *m, request_rec *r)
{
    metrics_slot *me = metrics_off ? NULL : metrics_child_slot(r);
    m->slot = me;
    if (!me)
        return;
    m->start = apr_time_now(); /* vDSO: no system call */
    MET_ADD(me->in_flight, 1);
}

void pyh_metrics_end(pyh_mreq *m, request_rec *r, const pyh_alias *a,
                     int asgi, int status)
{
    metrics_slot *me = m->slot;
    metrics_mount *mm;
    apr_interval_time_t us;
    int cls, proto, b;
    const char *up;

    if (!me)
        return;
    us = apr_time_now() - m->start;
    if (us < 0)
        us = 0;
    if (status == OK || status == DONE)
        status = r->status;
    cls = status / 100 - 1;
    if (cls < 0 || cls >= METRICS_CLASSES)
        cls = METRICS_CLASSES - 1;
    proto = asgi ? 1 : 0;
    if (asgi && (up = apr_table_get(r->headers_in, "Upgrade"))
        && !strcasecmp(up, "websocket"))
        proto = 2;
    for (b = 0; b < METRICS_BUCKETS - 1 && us > metrics_bounds[b]; b++)
        ;
    mm = &me->mounts[a ? a->metrics_mount : 0];
    MET_ADD(mm->requests[proto][cls], 1);
    MET_ADD(mm->buckets[b], 1);
    MET_ADD(mm->app_us, (uint64_t)us);
    MET_ADD(me->in_flight, -1);
    /* for LogFormat's %{pyhost-app-time-us}n and %{pyhost-process}n:
     * pool memory, no system call */
    apr_table_setn(r->notes, "pyhost-app-time-us",
                   apr_psprintf(r->pool, "%" APR_TIME_T_FMT, us));
    if (!apr_table_get(r->notes, "pyhost-process"))
        apr_table_setn(r->notes, "pyhost-process",
                       apr_psprintf(r->pool, "child/%d", (int)me->index));
}

void pyh_metrics_websocket(request_rec *r, int delta)
{
    metrics_slot *me = metrics_off ? NULL : metrics_child_slot(r);
    if (me)
        MET_ADD(me->websockets_open, delta);
}

/* ---- Python's side of a process: GC, interpreters, the ASGI loop -------- */

/* gc.callbacks entry: one collection of `generation` has ended. Runs in
 * whatever thread collects, with that interpreter's GIL; interpreters with
 * their own GIL may collect at once, hence the atomic adds. */
static PyObject *metrics_gc_callback(PyObject *self, PyObject *args)
{
    PyObject *phase, *info, *gen;
    metrics_slot *me;
    long g;
    (void)self;
    if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) != 2)
        Py_RETURN_NONE;
    phase = PyTuple_GET_ITEM(args, 0);
    info = PyTuple_GET_ITEM(args, 1);
    if (!PyUnicode_Check(phase)
        || PyUnicode_CompareWithASCIIString(phase, "stop") || !PyDict_Check(info)
        || !(gen = PyDict_GetItemString(info, "generation")))
        Py_RETURN_NONE;
    g = PyLong_AsLong(gen);
    if (g < 0 || g >= METRICS_GC_GENERATIONS) {
        PyErr_Clear(); /* a GC callback has nobody to raise to */
        Py_RETURN_NONE;
    }
    if ((me = metrics_proc_slot())) {
        MET_ADD(me->gc_collections[g], 1);
        /* anything counted while the slot was being adopted */
        if (MET_GET(metrics_local.gc_pending[g]))
            metrics_publish(me);
    }
    else {
        MET_ADD(metrics_local.gc_pending[g], 1);
    }
    Py_RETURN_NONE;
}

static PyMethodDef metrics_gc_def = {
    "pyhost_gc_callback", metrics_gc_callback, METH_VARARGS,
    "pyhost counts this interpreter's collections for its metrics"};

/* The interpreter's collections so far (before the callback existed), then
 * the callback for the rest. Failures leave the figures short, nothing
 * else: an interpreter is not refused for its metrics. */
static void metrics_gc_hook(void)
{
    PyObject *gc = PyImport_ImportModule("gc"), *stats = NULL, *cbs = NULL,
             *fn = NULL;
    Py_ssize_t i;
    metrics_slot *me = metrics_proc_slot();
    if (!gc || !(stats = PyObject_CallMethod(gc, "get_stats", NULL))
        || !PyList_Check(stats))
        goto done;
    for (i = 0; i < PyList_GET_SIZE(stats) && i < METRICS_GC_GENERATIONS; i++) {
        PyObject *c, *d = PyList_GET_ITEM(stats, i);
        long long n;
        if (!PyDict_Check(d) || !(c = PyDict_GetItemString(d, "collections"))
            || (n = PyLong_AsLongLong(c)) <= 0)
            continue;
        if (me)
            MET_ADD(me->gc_collections[i], (uint64_t)n);
        else
            MET_ADD(metrics_local.gc_pending[i], (uint64_t)n);
    }
    if ((cbs = PyObject_GetAttrString(gc, "callbacks")) && PyList_Check(cbs)
        && (fn = PyCFunction_New(&metrics_gc_def, NULL)))
        PyList_Append(cbs, fn);
done:
    PyErr_Clear();
    Py_XDECREF(fn);
    Py_XDECREF(cbs);
    Py_XDECREF(stats);
    Py_XDECREF(gc);
}

static void metrics_local_changed(void)
{
    metrics_slot *me;
    __atomic_add_fetch(&metrics_local.gen, 1, __ATOMIC_SEQ_CST);
    if ((me = metrics_proc_slot()))
        metrics_publish(me);
}

int pyh_metrics_interp_init(pyh_interp *in)
{
    (void)in;
    if (metrics_off || !metrics_seg_p)
        return 0;
    MET_ADD(metrics_local.interpreters, 1);
    metrics_local_changed();
    metrics_gc_hook();
    return 0;
}

void pyh_metrics_interp_clear(pyh_interp *in)
{
    (void)in;
    if (metrics_off || !metrics_seg_p)
        return;
    MET_ADD(metrics_local.interpreters, -1);
    metrics_local_changed();
}

void pyh_metrics_loop_lag(long long us)
{
    if (metrics_off || !metrics_seg_p)
        return;
    MET_SET(metrics_local.loop_lag_us, us < 0 ? 0 : us + 1);
    metrics_local_changed();
}

void pyh_metrics_lifespan(const char *script, int state)
{
    int i;
    if (metrics_off || !metrics_seg_p || !metrics_scripts || !script
        || state < 0 || state >= PYH_MLS_COUNT)
        return;
    for (i = 0; i < metrics_scripts->nelts; i++) {
        const metrics_script *ms =
            &APR_ARRAY_IDX(metrics_scripts, i, metrics_script);
        if (!strcmp(ms->script, script))
            MET_SET(metrics_local.lifespan[ms->mount], state);
    }
    metrics_local_changed();
}

void pyh_metrics_note(request_rec *r, const pyh_daemon *d,
                      const char *app_group)
{
    apr_table_setn(r->notes, "pyhost-group", d ? d->name : "%{GLOBAL}");
    apr_table_setn(r->notes, "pyhost-interpreter",
                   *app_group ? app_group : "%{GLOBAL}");
    if (d)
        apr_table_setn(r->notes, "pyhost-process",
                       apr_pstrcat(r->pool, "daemon/", d->name, NULL));
}

static apr_status_t metrics_on_again(void *data)
{
    (void)data;
    metrics_off = 0;
    return APR_SUCCESS;
}

const char *pyh_metrics_set_enabled(cmd_parms *cmd, void *dconf, int on)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    (void)dconf;
    if (err)
        return err;
    metrics_off = !on;
    /* the next configuration starts from the default (On) */
    apr_pool_cleanup_register(cmd->pool, NULL, metrics_on_again,
                              apr_pool_cleanup_null);
    return NULL;
}

/* ---- daemon processes and the parent ------------------------------------ */

void pyh_metrics_daemon_init(pyh_dproc *dp)
{
    int g = dp->d->index < METRICS_GROUPS ? metrics_group_of[dp->d->index] : -1;
    metrics_slot *me;
    if (!metrics_seg_p || g < 0 || dp->slot >= metrics_seg_p->groups[g].nslots)
        return;
    me = &metrics_seg_p->slots[metrics_seg_p->groups[g].first_slot + dp->slot];
    MET_SET(me->group, g);
    MET_SET(me->index, dp->slot);
    MET_SET(me->threads, dp->d->threads);
    MET_SET(me->in_flight, 0); /* the previous process's are gone with it */
    MET_SET(me->queued, 0);
    MET_SET(me->pending_cause, PYH_MC_NONE);
    MET_SET(me->pid, (int32_t)getpid());
    MET_SET(me->used, 2);
    metrics_me = me;
    metrics_publish(me);
}

void pyh_metrics_daemon_recycling(const char *why)
{
    int cause = PYH_MC_EXIT;
    if (!metrics_me || !why)
        return;
    /* daemon.c's reasons start with the option that ran out. */
    if (!strncmp(why, "maximum-requests", 16))
        cause = PYH_MC_MAXIMUM_REQUESTS;
    else if (!strncmp(why, "restart-interval", 16))
        cause = PYH_MC_RESTART_INTERVAL;
    else if (!strncmp(why, "memory-limit", 12))
        cause = PYH_MC_MEMORY_LIMIT;
    else if (!strncmp(why, "inactivity", 10))
        cause = PYH_MC_INACTIVITY;
    else if (strstr(why, "request-timeout"))
        cause = PYH_MC_REQUEST_TIMEOUT;
    else if (!strncmp(why, "startup", 7))
        cause = PYH_MC_START_FAILURE;
    MET_SET(metrics_me->pending_cause, cause);
}

void pyh_metrics_daemon_busy(int delta)
{
    if (metrics_me)
        MET_ADD(metrics_me->in_flight, delta);
}

void pyh_metrics_daemon_queued(int nqueued)
{
    if (metrics_me)
        MET_SET(metrics_me->queued, nqueued);
}

void pyh_metrics_daemon_queue_timeout(void)
{
    if (metrics_me)
        MET_ADD(metrics_seg_p->groups[metrics_me->group].queue_timeouts, 1);
}

void pyh_metrics_request_timeout(pyh_daemon *d)
{
    int g;
    if (!metrics_seg_p || d->index >= METRICS_GROUPS
        || (g = metrics_group_of[d->index]) < 0)
        return;
    MET_ADD(metrics_seg_p->groups[g].request_timeouts, 1);
}

void pyh_metrics_daemon_died(pyh_dproc *dp, int ready, int signaled)
{
    int g = dp->d->index < METRICS_GROUPS ? metrics_group_of[dp->d->index] : -1;
    metrics_slot *sl;
    int cause;
    if (!metrics_seg_p || g < 0 || dp->slot >= metrics_seg_p->groups[g].nslots)
        return;
    sl = &metrics_seg_p->slots[metrics_seg_p->groups[g].first_slot + dp->slot];
    cause = MET_GET(sl->pending_cause);
    MET_SET(sl->pending_cause, PYH_MC_NONE);
    MET_SET(sl->in_flight, 0);
    MET_SET(sl->queued, 0);
    if (!ready)
        cause = PYH_MC_START_FAILURE;
    else if (signaled)
        cause = PYH_MC_SIGNAL;
    else if (cause == PYH_MC_NONE)
        cause = PYH_MC_EXIT;
    metrics_seg_p->groups[g].restarts[cause]++;
}

/* ---- the Prometheus endpoint -------------------------------------------- */

/* A label value as the exposition format quotes it. */
static const char *metrics_label(apr_pool_t *p, const char *v)
{
    apr_size_t n = 0;
    const char *c;
    char *out, *o;
    for (c = v; *c; c++)
        n += (*c == '\\' || *c == '"' || *c == '\n') ? 2 : 1;
    out = o = apr_palloc(p, n + 1);
    for (c = v; *c; c++) {
        if (*c == '\\' || *c == '"' || *c == '\n') {
            *o++ = '\\';
            *o++ = *c == '\n' ? 'n' : *c;
        }
        else {
            *o++ = *c;
        }
    }
    *o = '\0';
    return out;
}

static const char *metrics_slot_name(apr_pool_t *p, const metrics_seg *seg,
                                     const metrics_slot *sl)
{
    if (sl->used == 2)
        return apr_psprintf(p, "daemon/%s/%d",
                            metrics_label(p, seg->groups[sl->group].name),
                            (int)sl->index);
    return apr_psprintf(p, "child/%d", (int)sl->index);
}

static int metrics_pid_alive(int32_t pid)
{
    return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

static long metrics_rss(int32_t pid)
{
    char path[64];
    long pages = 0, rss = 0;
    FILE *f;
    apr_snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
    if (!(f = fopen(path, "r")))
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = -1;
    fclose(f);
    return rss < 0 ? -1 : rss * sysconf(_SC_PAGESIZE);
}

/* A family's header. OpenMetrics names a counter family without _total. */
static void metrics_family(request_rec *r, int om, const char *name,
                           const char *type, const char *help)
{
    apr_size_t n = strlen(name);
    if (om && !strcmp(type, "counter") && n > 6
        && !strcmp(name + n - 6, "_total"))
        name = apr_pstrmemdup(r->pool, name, n - 6);
    ap_rprintf(r, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metrics_requests(request_rec *r, int om, const metrics_seg *seg)
{
    int m, p, c, i, b;
    metrics_family(r, om, "pyhost_requests_total", "counter",
                   "Requests answered, by mount (URL prefix), protocol and "
                   "status class.");
    for (m = 0; m < seg->nmounts; m++) {
        const char *mount = metrics_label(r->pool, seg->mounts[m]);
        for (p = 0; p < METRICS_PROTOS; p++)
            for (c = 0; c < METRICS_CLASSES; c++) {
                uint64_t n = 0;
                for (i = 0; i < seg->nslots; i++)
                    n += MET_GET(seg->slots[i].mounts[m].requests[p][c]);
                if (n || (c == 1 && p == seg->mount_proto[m] && m))
                    ap_rprintf(r,
                               "pyhost_requests_total{mount=\"%s\","
                               "protocol=\"%s\",status=\"%dxx\"} %" APR_UINT64_T_FMT
                               "\n",
                               mount, metrics_protos[p], c + 1, n);
            }
    }
    metrics_family(r, om, "pyhost_app_seconds", "histogram",
                   "Time from the start of pyhost's handler to the last "
                   "byte handed to Apache, by mount.");
    for (m = 0; m < seg->nmounts; m++) {
        const char *mount = metrics_label(r->pool, seg->mounts[m]);
        uint64_t acc = 0, us = 0;
        if (!m) { /* requests with no mount: listed once there are some */
            for (b = 0; b < METRICS_BUCKETS; b++)
                for (i = 0; i < seg->nslots; i++)
                    acc += MET_GET(seg->slots[i].mounts[0].buckets[b]);
            if (!acc)
                continue;
            acc = 0;
        }
        for (b = 0; b < METRICS_BUCKETS; b++) {
            for (i = 0; i < seg->nslots; i++)
                acc += MET_GET(seg->slots[i].mounts[m].buckets[b]);
            ap_rprintf(r,
                       "pyhost_app_seconds_bucket{mount=\"%s\",le=\"%s\"} "
                       "%" APR_UINT64_T_FMT "\n",
                       mount, metrics_bound_names[b], acc);
        }
        for (i = 0; i < seg->nslots; i++)
            us += MET_GET(seg->slots[i].mounts[m].app_us);
        ap_rprintf(r,
                   "pyhost_app_seconds_sum{mount=\"%s\"} %.6f\n"
                   "pyhost_app_seconds_count{mount=\"%s\"} %" APR_UINT64_T_FMT
                   "\n",
                   mount, (double)us / 1e6, mount, acc);
    }
}

static void metrics_processes(request_rec *r, int om, const metrics_seg *seg)
{
    int i;
    int64_t in_flight = 0;
    for (i = 0; i < seg->nslots; i++)
        if (seg->slots[i].used && metrics_pid_alive(seg->slots[i].pid)
            && seg->slots[i].used == 1)
            in_flight += MET_GET(seg->slots[i].in_flight);
    metrics_family(r, om, "pyhost_requests_in_flight", "gauge",
                   "Requests in pyhost's handler in Apache's children now.");
    ap_rprintf(r, "pyhost_requests_in_flight %" APR_INT64_T_FMT "\n",
               in_flight);
    metrics_family(r, om, "pyhost_threads", "gauge",
                   "Worker threads per live process, busy (in a request) "
                   "or idle.");
    for (i = 0; i < seg->nslots; i++) {
        const metrics_slot *sl = &seg->slots[i];
        int64_t busy;
        const char *name;
        if (!sl->used || !metrics_pid_alive(sl->pid))
            continue;
        busy = MET_GET(sl->in_flight);
        if (busy < 0)
            busy = 0;
        name = metrics_slot_name(r->pool, seg, sl);
        ap_rprintf(r,
                   "pyhost_threads{process=\"%s\",state=\"busy\"} %"
                   APR_INT64_T_FMT "\n"
                   "pyhost_threads{process=\"%s\",state=\"idle\"} %"
                   APR_INT64_T_FMT "\n",
                   name, busy, name,
                   busy > sl->threads ? 0 : (int64_t)sl->threads - busy);
    }
    metrics_family(r, om, "pyhost_process_resident_memory_bytes", "gauge",
                   "Resident memory of each live Apache child and daemon "
                   "process.");
    for (i = 0; i < seg->nslots; i++) {
        const metrics_slot *sl = &seg->slots[i];
        long rss;
        if (!sl->used || !metrics_pid_alive(sl->pid)
            || (rss = metrics_rss(sl->pid)) < 0)
            continue;
        ap_rprintf(r, "pyhost_process_resident_memory_bytes{process=\"%s\"} %ld\n",
                   metrics_slot_name(r->pool, seg, sl), rss);
    }
    metrics_family(r, om, "pyhost_websockets_open", "gauge",
                   "ASGI WebSocket connections open now.");
    {
        int64_t ws = 0;
        for (i = 0; i < seg->nslots; i++)
            if (seg->slots[i].used && metrics_pid_alive(seg->slots[i].pid))
                ws += MET_GET(seg->slots[i].websockets_open);
        ap_rprintf(r, "pyhost_websockets_open %" APR_INT64_T_FMT "\n", ws);
    }
}

/* What Python does in each live process, and the ASGI lifespans by mount. */
static void metrics_python(request_rec *r, int om, const metrics_seg *seg)
{
    int i, g, m, st;
    metrics_family(r, om, "pyhost_python_gc_collections_total", "counter",
                   "Python garbage collections, by process and generation "
                   "(all interpreters of the process).");
    for (i = 0; i < seg->nslots; i++) {
        const metrics_slot *sl = &seg->slots[i];
        const char *name;
        if (!sl->used || !metrics_pid_alive(sl->pid))
            continue;
        name = metrics_slot_name(r->pool, seg, sl);
        for (g = 0; g < METRICS_GC_GENERATIONS; g++)
            ap_rprintf(r,
                       "pyhost_python_gc_collections_total{process=\"%s\","
                       "generation=\"%d\"} %" APR_UINT64_T_FMT "\n",
                       name, g, MET_GET(sl->gc_collections[g]));
    }
    metrics_family(r, om, "pyhost_python_interpreters", "gauge",
                   "Python interpreters alive, by process.");
    for (i = 0; i < seg->nslots; i++) {
        const metrics_slot *sl = &seg->slots[i];
        if (!sl->used || !metrics_pid_alive(sl->pid))
            continue;
        ap_rprintf(r, "pyhost_python_interpreters{process=\"%s\"} %d\n",
                   metrics_slot_name(r->pool, seg, sl),
                   (int)MET_GET(sl->interpreters));
    }
    metrics_family(r, om, "pyhost_asgi_loop_lag_seconds", "gauge",
                   "How late the ASGI event loop's periodic callback last "
                   "ran (sampled every 0.25 s), by process with a loop.");
    for (i = 0; i < seg->nslots; i++) {
        const metrics_slot *sl = &seg->slots[i];
        int64_t lag;
        if (!sl->used || !metrics_pid_alive(sl->pid)
            || (lag = MET_GET(sl->loop_lag_us)) <= 0)
            continue;
        ap_rprintf(r, "pyhost_asgi_loop_lag_seconds{process=\"%s\"} %.6f\n",
                   metrics_slot_name(r->pool, seg, sl),
                   (double)(lag - 1) / 1e6);
    }
    metrics_family(r, om, "pyhost_asgi_lifespan_processes", "gauge",
                   "Live processes whose ASGI lifespan of the mount's app is "
                   "in each state.");
    for (m = 1; m < seg->nmounts; m++) {
        int64_t n[PYH_MLS_COUNT] = {0};
        const char *mount;
        if (seg->mount_proto[m] != PYH_PROTO_ASGI)
            continue;
        for (i = 0; i < seg->nslots; i++) {
            const metrics_slot *sl = &seg->slots[i];
            st = MET_GET(sl->mounts[m].lifespan);
            if (sl->used && st > PYH_MLS_NONE && st < PYH_MLS_COUNT
                && metrics_pid_alive(sl->pid))
                n[st]++;
        }
        mount = metrics_label(r->pool, seg->mounts[m]);
        for (st = PYH_MLS_STARTING; st < PYH_MLS_COUNT; st++)
            ap_rprintf(r,
                       "pyhost_asgi_lifespan_processes{mount=\"%s\","
                       "state=\"%s\"} %" APR_INT64_T_FMT "\n",
                       mount, metrics_lifespan_states[st], n[st]);
    }
}

/* Daemon groups, added up by name (a group that grew at a restart has two
 * records). */
static void metrics_daemons(request_rec *r, int om, const metrics_seg *seg)
{
    int g, h, c, i, j;
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"pyhost_daemon_processes", "gauge",
         "Daemon processes ready to serve, by group."},
        {"pyhost_daemon_restarts_total", "counter",
         "Daemon processes replaced, by group and cause."},
        {"pyhost_daemon_queued", "gauge",
         "Requests waiting in daemon processes for a free thread."},
        {"pyhost_daemon_queue_timeouts_total", "counter",
         "Requests answered 503 after queue-timeout."},
        {"pyhost_daemon_request_timeouts_total", "counter",
         "Requests answered 504 after request-timeout."},
    };
    for (j = 0; j < (int)(sizeof(fam) / sizeof(fam[0])); j++) {
        metrics_family(r, om, fam[j].name, fam[j].type, fam[j].help);
        for (g = 0; g < seg->ngroups; g++) {
            const metrics_group *gr = &seg->groups[g];
            const char *name = metrics_label(r->pool, gr->name);
            uint64_t n = 0;
            for (h = 0; h < g; h++)
                if (!strcmp(seg->groups[h].name, gr->name))
                    break;
            if (h < g)
                continue; /* counted with the first of its name */
            if (j == 1) {
                for (c = PYH_MC_EXIT; c < PYH_MC_COUNT; c++) {
                    n = 0;
                    for (h = g; h < seg->ngroups; h++)
                        if (!strcmp(seg->groups[h].name, gr->name))
                            n += MET_GET(seg->groups[h].restarts[c]);
                    ap_rprintf(r,
                               "pyhost_daemon_restarts_total{group=\"%s\","
                               "cause=\"%s\"} %" APR_UINT64_T_FMT "\n",
                               name, metrics_causes[c], n);
                }
                continue;
            }
            for (h = g; h < seg->ngroups; h++) {
                const metrics_group *o = &seg->groups[h];
                if (strcmp(o->name, gr->name))
                    continue;
                if (j == 3)
                    n += MET_GET(o->queue_timeouts);
                else if (j == 4)
                    n += MET_GET(o->request_timeouts);
                else
                    for (i = 0; i < o->nslots; i++) {
                        const metrics_slot *sl =
                            &seg->slots[o->first_slot + i];
                        if (!sl->used || !metrics_pid_alive(sl->pid))
                            continue;
                        n += j == 0 ? 1 : (uint64_t)MET_GET(sl->queued);
                    }
            }
            ap_rprintf(r, "%s{group=\"%s\"} %" APR_UINT64_T_FMT "\n",
                       fam[j].name, name, n);
        }
    }
}

static int metrics_handler(request_rec *r)
{
    const char *accept;
    int om;
    if (!r->handler || strcmp(r->handler, "pyhost-metrics"))
        return DECLINED;
    if (r->method_number != M_GET)
        return HTTP_METHOD_NOT_ALLOWED;
    if (!metrics_seg_p)
        return HTTP_SERVICE_UNAVAILABLE;
    /* the answering child publishes its own figures too, even if it has
     * served no app yet */
    if (!metrics_off)
        metrics_child_slot(r);
    accept = apr_table_get(r->headers_in, "Accept");
    om = accept && ap_strcasestr(accept, "application/openmetrics-text");
    ap_set_content_type(r, om ? "application/openmetrics-text; "
                                "version=1.0.0; charset=utf-8"
                              : "text/plain; version=0.0.4; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (r->header_only)
        return OK;
    metrics_requests(r, om, metrics_seg_p);
    metrics_processes(r, om, metrics_seg_p);
    metrics_python(r, om, metrics_seg_p);
    metrics_daemons(r, om, metrics_seg_p);
    if (om)
        ap_rputs("# EOF\n", r);
    return OK;
}

/* ---- mod_status ------------------------------------------------------------ */

/* A pyhost section in /server-status: totals, then each daemon group and
 * each live process; ?auto gets the same figures as Key: value lines. */
static int metrics_status(request_rec *r, int flags)
{
    const metrics_seg *seg = metrics_seg_p;
    uint64_t req = 0, err5 = 0;
    int64_t in_flight = 0;
    int i, m, p, c, g, short_form = flags & AP_STATUS_SHORT;

    if (!seg)
        return OK;
    for (i = 0; i < seg->nslots; i++) {
        const metrics_slot *sl = &seg->slots[i];
        for (m = 0; m < seg->nmounts; m++)
            for (p = 0; p < METRICS_PROTOS; p++)
                for (c = 0; c < METRICS_CLASSES; c++) {
                    uint64_t n = MET_GET(sl->mounts[m].requests[p][c]);
                    req += n;
                    if (c == 4)
                        err5 += n;
                }
        if (sl->used == 1 && metrics_pid_alive(sl->pid))
            in_flight += MET_GET(sl->in_flight);
    }
    if (short_form)
        ap_rprintf(r,
                   "PyhostRequests: %" APR_UINT64_T_FMT "\n"
                   "Pyhost5xx: %" APR_UINT64_T_FMT "\n"
                   "PyhostInFlight: %" APR_INT64_T_FMT "\n",
                   req, err5, in_flight);
    else
        ap_rprintf(r,
                   "<hr />\n<h2>pyhost</h2>\n<dl><dt>%" APR_UINT64_T_FMT
                   " requests, %" APR_UINT64_T_FMT " answered 5xx, %"
                   APR_INT64_T_FMT " in flight</dt></dl>\n",
                   req, err5, in_flight);
    if (!short_form)
        ap_rputs("<table border=\"0\"><tr><th>group</th><th>restarts</th>"
                 "<th>queue timeouts</th><th>request timeouts</th></tr>\n", r);
    for (g = 0; g < seg->ngroups; g++) {
        const metrics_group *gr = &seg->groups[g];
        uint64_t restarts = 0;
        for (c = PYH_MC_EXIT; c < PYH_MC_COUNT; c++)
            restarts += MET_GET(gr->restarts[c]);
        if (short_form)
            ap_rprintf(r, "PyhostDaemonRestarts_%s: %" APR_UINT64_T_FMT "\n",
                       gr->name, restarts);
        else
            ap_rprintf(r,
                       "<tr><td>%s</td><td>%" APR_UINT64_T_FMT "</td><td>%"
                       APR_UINT64_T_FMT "</td><td>%" APR_UINT64_T_FMT
                       "</td></tr>\n",
                       ap_escape_html(r->pool, gr->name), restarts,
                       MET_GET(gr->queue_timeouts),
                       MET_GET(gr->request_timeouts));
    }
    if (!short_form)
        ap_rputs("</table>\n<table border=\"0\"><tr><th>process</th>"
                 "<th>pid</th><th>busy</th><th>threads</th>"
                 "<th>resident memory</th></tr>\n", r);
    for (i = 0; i < seg->nslots; i++) {
        const metrics_slot *sl = &seg->slots[i];
        const char *name;
        if (!sl->used || !metrics_pid_alive(sl->pid))
            continue;
        name = metrics_slot_name(r->pool, seg, sl);
        if (short_form)
            ap_rprintf(r, "PyhostBusy_%s: %" APR_INT64_T_FMT "\n", name,
                       MET_GET(sl->in_flight));
        else
            ap_rprintf(r,
                       "<tr><td>%s</td><td>%d</td><td>%" APR_INT64_T_FMT
                       "</td><td>%d</td><td>%ld</td></tr>\n",
                       ap_escape_html(r->pool, name), (int)sl->pid,
                       MET_GET(sl->in_flight), (int)sl->threads,
                       metrics_rss(sl->pid));
    }
    if (!short_form)
        ap_rputs("</table>\n", r);
    return OK;
}

/* ---- pyhost.metrics: the figures as dicts, inside an app ---------------- */

/* d[key] = an int; 0 on success. */
static int metrics_py_set(PyObject *d, const char *key, long long v)
{
    PyObject *o = PyLong_FromLongLong(v);
    int rc = o ? PyDict_SetItemString(d, key, o) : -1;
    Py_XDECREF(o);
    return rc;
}

/* d[key], a new dict made on first use (borrowed). */
static PyObject *metrics_py_sub(PyObject *d, const char *key)
{
    PyObject *sub = PyDict_GetItemString(d, key);
    if (sub)
        return sub;
    if (!(sub = PyDict_New()))
        return NULL;
    if (PyDict_SetItemString(d, key, sub) < 0) {
        Py_DECREF(sub);
        return NULL;
    }
    Py_DECREF(sub); /* d holds it */
    return sub;
}

static PyObject *metrics_py_server(const metrics_seg *seg)
{
    PyObject *srv = PyDict_New(), *reqs, *app, *groups;
    int64_t in_flight = 0;
    int i, m, p, c, g;
    char cls[4];

    if (!srv || !(reqs = metrics_py_sub(srv, "requests"))
        || !(app = metrics_py_sub(srv, "app_seconds"))
        || !(groups = metrics_py_sub(srv, "daemon_groups")))
        goto fail;
    for (m = 0; m < seg->nmounts; m++) {
        uint64_t count = 0, us = 0;
        PyObject *mount = NULL, *tm;
        for (p = 0; p < METRICS_PROTOS; p++)
            for (c = 0; c < METRICS_CLASSES; c++) {
                uint64_t n = 0;
                for (i = 0; i < seg->nslots; i++)
                    n += MET_GET(seg->slots[i].mounts[m].requests[p][c]);
                if (!n)
                    continue;
                apr_snprintf(cls, sizeof(cls), "%dxx", c + 1);
                if ((!mount && !(mount = metrics_py_sub(reqs, seg->mounts[m])))
                    || !(tm = metrics_py_sub(mount, metrics_protos[p]))
                    || metrics_py_set(tm, cls, (long long)n) < 0)
                    goto fail;
            }
        for (i = 0; i < seg->nslots; i++) {
            for (c = 0; c < METRICS_BUCKETS; c++)
                count += MET_GET(seg->slots[i].mounts[m].buckets[c]);
            us += MET_GET(seg->slots[i].mounts[m].app_us);
        }
        if (count) {
            PyObject *a = metrics_py_sub(app, seg->mounts[m]), *sum;
            if (!a || metrics_py_set(a, "count", (long long)count) < 0
                || !(sum = PyFloat_FromDouble((double)us / 1e6)))
                goto fail;
            c = PyDict_SetItemString(a, "sum", sum);
            Py_DECREF(sum);
            if (c < 0)
                goto fail;
        }
    }
    for (i = 0; i < seg->nslots; i++)
        if (seg->slots[i].used == 1 && metrics_pid_alive(seg->slots[i].pid))
            in_flight += MET_GET(seg->slots[i].in_flight);
    if (metrics_py_set(srv, "in_flight", in_flight) < 0)
        goto fail;
    for (g = 0; g < seg->ngroups; g++) {
        const metrics_group *gr = &seg->groups[g];
        PyObject *gd = metrics_py_sub(groups, gr->name), *rs;
        long long alive = 0;
        if (!gd || !(rs = metrics_py_sub(gd, "restarts")))
            goto fail;
        for (c = PYH_MC_EXIT; c < PYH_MC_COUNT; c++) {
            PyObject *old = PyDict_GetItemString(rs, metrics_causes[c]);
            if (metrics_py_set(rs, metrics_causes[c],
                               (old ? PyLong_AsLongLong(old) : 0)
                                   + (long long)MET_GET(gr->restarts[c])) < 0)
                goto fail;
        }
        for (i = 0; i < gr->nslots; i++)
            alive += metrics_pid_alive(seg->slots[gr->first_slot + i].pid);
        if (metrics_py_set(gd, "processes", alive) < 0
            || metrics_py_set(gd, "queue_timeouts",
                              (long long)MET_GET(gr->queue_timeouts)) < 0
            || metrics_py_set(gd, "request_timeouts",
                              (long long)MET_GET(gr->request_timeouts)) < 0)
            goto fail;
    }
    return srv;
fail:
    Py_XDECREF(srv);
    return NULL;
}

/* An Apache child's own requests and time in the app (mod_wsgi's
 * request_count and request_busy_time); a daemon's are counted by the
 * children that relayed them, so it has none of its own. */
static int metrics_py_requests(PyObject *proc, const metrics_slot *me)
{
    uint64_t n = 0, us = 0;
    PyObject *o;
    int m, pr, c, rc;
    for (m = 0; m < METRICS_MOUNTS; m++) {
        for (pr = 0; pr < METRICS_PROTOS; pr++)
            for (c = 0; c < METRICS_CLASSES; c++)
                n += MET_GET(me->mounts[m].requests[pr][c]);
        us += MET_GET(me->mounts[m].app_us);
    }
    if (metrics_py_set(proc, "requests", (long long)n) < 0
        || !(o = PyFloat_FromDouble((double)us / 1e6)))
        return -1;
    rc = PyDict_SetItemString(proc, "app_seconds", o);
    Py_DECREF(o);
    return rc;
}

static PyObject *metrics_py_snapshot(PyObject *mod, PyObject *unused)
{
    const metrics_seg *seg = metrics_seg_p;
    const metrics_slot *me = metrics_me ? metrics_me : metrics_child;
    PyObject *out, *proc, *srv, *name;
    (void)mod;
    (void)unused;
    if (!seg || metrics_off)
        Py_RETURN_NONE;
    if (!(out = PyDict_New()))
        return NULL;
    if (!(proc = metrics_py_sub(out, "process"))
        || metrics_py_set(proc, "pid", (long long)getpid()) < 0
        || metrics_py_set(proc, "resident_memory_bytes",
                          metrics_rss((int32_t)getpid())) < 0)
        goto fail;
    if (me) {
        apr_pool_t *p;
        if (apr_pool_create(&p, NULL) != APR_SUCCESS) {
            PyErr_NoMemory();
            goto fail;
        }
        name = PyUnicode_FromString(metrics_slot_name(p, seg, me));
        apr_pool_destroy(p);
        if (!name || PyDict_SetItemString(proc, "name", name) < 0) {
            Py_XDECREF(name);
            goto fail;
        }
        Py_DECREF(name);
        if (metrics_py_set(proc, "threads", me->threads) < 0
            || metrics_py_set(proc, "busy_threads", MET_GET(me->in_flight)) < 0)
            goto fail;
        if (me->used == 1 && metrics_py_requests(proc, me) < 0)
            goto fail;
    }
    if (!(srv = metrics_py_server(seg)))
        goto fail;
    if (PyDict_SetItemString(out, "server", srv) < 0) {
        Py_DECREF(srv);
        goto fail;
    }
    Py_DECREF(srv);
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef metrics_py_methods[] = {
    {"snapshot", metrics_py_snapshot, METH_NOARGS,
     "snapshot() -> {'process': {...}, 'server': {...}}, or None when "
     "metrics are off"},
    {NULL, NULL, 0, NULL}};

static PyModuleDef_Slot metrics_py_slots[] = {
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL}};

static struct PyModuleDef metrics_py_def = {
    PyModuleDef_HEAD_INIT, "_pyhost_metrics",
    "pyhost's shared counters, for pyhost.metrics", 0, metrics_py_methods,
    metrics_py_slots, NULL, NULL, NULL};

/* Multi-phase init: the module has no state, so every interpreter
 * (also one with its own GIL) may import it. */
PyObject *pyh_metrics_pyinit(void)
{
    return PyModuleDef_Init(&metrics_py_def);
}

/* The pid, once: a request that cannot find its slot yet (no scoreboard
 * handle) looks again next time without a system call. */
static void metrics_child_init(apr_pool_t *pchild, server_rec *s)
{
    (void)pchild;
    (void)s;
    metrics_pid = getpid();
}

void pyh_metrics_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_child_init(metrics_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(metrics_handler, NULL, NULL, APR_HOOK_MIDDLE);
    /* an optional hook: nothing happens without mod_status */
    APR_OPTIONAL_HOOK(ap, status_hook, metrics_status, NULL, NULL,
                      APR_HOOK_MIDDLE);
}
