/* daemon.h - the seam between daemon_parent.c (Apache's parent: the
 * groups' sockets, forking and supervising their processes across
 * restarts) and daemon.c (a daemon process, and what Apache's children
 * know of a group). */
#ifndef PYHOST_DAEMON_H
#define PYHOST_DAEMON_H

#include "pyhost.h"

/* The parent's record of one process slot of the current generation. */
typedef struct pyh_dproc {
    pyh_daemon *d;
    int slot;
    apr_proc_t proc;
    int registered;             /* an APR "other child" (APR's unregister
                                   dereferences NULL for an unknown one) */
    struct daemon_sock *sock;   /* its socket file (daemon_parent.c) */
    int fails;                  /* failed starts of this slot in a row */
    apr_interval_time_t delay;  /* the next process waits this long */
} pyh_dproc;

/* A group's state, in anonymous shared memory the parent maps before
 * anything forks: Apache's children read it (mapped read-only there) to
 * refuse requests at once while the group cannot start; a daemon writes
 * why it could not start, or that it is ready, and then unmaps it. One
 * mapping per group, so a daemon drops every other group's. Plain stores:
 * one writer per field at a time, and a stale read costs one request. */
enum { DSLOT_STARTING, DSLOT_READY, DSLOT_FAILED };

struct pyh_dstate {
    volatile int failing;           /* parent: starts keep failing and no
                                       process serves; a ready one clears */
    volatile int fails;             /* parent: failed starts in a row */
    volatile apr_time_t retry_at;   /* parent: when the next start comes */
    char cause[256];                /* why the last start failed (daemon) */
    volatile unsigned char slot[];  /* per process slot, DSLOT_* */
};

/* send-buffer-size / receive-buffer-size on a relay socket (the listening
 * one in the parent, each accepted one in a daemon); logs a failure. */
void pyh_daemon_set_buffers(int fd, const pyh_daemon *d, server_rec *s);

/* In a process just forked for slot dp: becomes that daemon process and
 * never returns. pconf: the generation's configuration pool. */
void pyh_daemon_main(pyh_dproc *dp, apr_pool_t *pconf)
    __attribute__((noreturn));

#endif
