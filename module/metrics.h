/* metrics.h - the seam to metrics.c: shared-memory counters every Apache
 * child and daemon process adds to without a lock or a system call, and
 * what the request path, the daemons and the parent call to feed them. */
#ifndef PYHOST_METRICS_H
#define PYHOST_METRICS_H

#include "pyhost.h"

struct pyh_dproc;

/* Causes of a daemon restart (pyhost_daemon_restarts_total{cause}). */
enum pyh_mcause {
    PYH_MC_NONE, PYH_MC_EXIT, PYH_MC_SIGNAL, PYH_MC_MAXIMUM_REQUESTS,
    PYH_MC_RESTART_INTERVAL, PYH_MC_MEMORY_LIMIT, PYH_MC_REQUEST_TIMEOUT,
    PYH_MC_INACTIVITY, PYH_MC_START_FAILURE, PYH_MC_COUNT
};

/* One request, from the handler's start to its end (stack memory). */
typedef struct {
    void *slot;
    apr_time_t start;
} pyh_mreq;

void pyh_metrics_register_hooks(apr_pool_t *p);
/* The _pyhost_metrics built-in module (PyImport_AppendInittab, interp.c)
 * behind pyhost.metrics. */
PyObject *pyh_metrics_pyinit(void);
/* Parent, post_config, before anything forks: finds or makes the segment
 * and maps this configuration's mounts and daemon groups onto it. */
int pyh_metrics_post_config(apr_pool_t *pconf, server_rec *s);
/* Around a request in an Apache child's handler. */
void pyh_metrics_begin(pyh_mreq *m, request_rec *r);
void pyh_metrics_end(pyh_mreq *m, request_rec *r, const pyh_alias *a,
                     int asgi, int status);
/* Access-log notes (pyhost-group, pyhost-interpreter, pyhost-process)
 * once the handler knows where the request runs; d NULL: embedded. */
void pyh_metrics_note(request_rec *r, const pyh_daemon *d,
                      const char *app_group);
/* PyhostMetrics On|Off (config.c's command table). */
const char *pyh_metrics_set_enabled(cmd_parms *cmd, void *dconf, int on);
/* An ASGI WebSocket of this Apache child opened (+1) or closed (-1):
 * for websocket.c / asgi.c (pyhost_websockets_open). Its requests are
 * counted as protocol "websocket" already (the Upgrade header). */
void pyh_metrics_websocket(request_rec *r, int delta);
/* Per interpreter, with its GIL (interp.c's per-interpreter table): counts
 * it among this process's interpreters and hooks gc.callbacks so that its
 * collections are counted when they happen, not sampled on the request
 * path. Never fails the interpreter. */
int pyh_metrics_interp_init(pyh_interp *in);
void pyh_metrics_interp_clear(pyh_interp *in);
/* This process's ASGI event loop: how late its periodic callback ran, in
 * microseconds (asgi.c's host callback); -1: the loop has stopped. */
void pyh_metrics_loop_lag(long long us);
/* The ASGI lifespan of the app in `script` is now in state (PYH_MLS_*),
 * in this process: counted for every mount serving that script. */
enum pyh_mlifespan {
    PYH_MLS_NONE, PYH_MLS_STARTING, PYH_MLS_READY, PYH_MLS_FAILED,
    PYH_MLS_STOPPED, PYH_MLS_COUNT
};
void pyh_metrics_lifespan(const char *script, int state);
/* A daemon process, just forked for dp. */
void pyh_metrics_daemon_init(struct pyh_dproc *dp);
/* A daemon process is about to recycle: why is daemon.c's reason text. */
void pyh_metrics_daemon_recycling(const char *why);
/* A daemon worker thread starts (+1) or ends (-1) a request. */
void pyh_metrics_daemon_busy(int delta);
/* The daemon's watchdog, every 100 ms: its queue length. */
void pyh_metrics_daemon_queued(int nqueued);
/* A request in a daemon's queue past queue-timeout got 503. */
void pyh_metrics_daemon_queue_timeout(void);
/* An Apache child answers 504 for daemon group d. */
void pyh_metrics_request_timeout(pyh_daemon *d);
/* Parent: a daemon process of dp's slot died while serving (ready) or
 * before it was ready; signaled: killed by a signal. */
void pyh_metrics_daemon_died(struct pyh_dproc *dp, int ready, int signaled);

#endif
