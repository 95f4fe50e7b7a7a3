/* compat.h - the one place where CPython version and build differences are
 * handled. Every module/ file includes this first, so that Python.h comes
 * before any system header as CPython requires. */
#ifndef PYHOST_COMPAT_H
#define PYHOST_COMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
/* Before any APR header: APR_OFFSETOF (under the APR_RING and brigade
 * macros) is offsetof only if offsetof is defined when apr_general.h is
 * read, and otherwise subtracts null pointers, which clang -Wextra -Werror
 * refuses (scripts/sanitize.sh builds with clang). Python.h includes
 * stddef.h only where HAVE_STDDEF_H is defined, which 3.11's is not. */
#include <stddef.h>

#if PY_VERSION_HEX < 0x03090000
#error "pyhost needs Python 3.9 or newer"
#endif

/* Thread-local storage for per-thread interpreter state caches. */
#define PYH_THREAD_LOCAL __thread

#define PYH_PY_VERSION_STR \
    Py_STRINGIFY(PY_MAJOR_VERSION) "." Py_STRINGIFY(PY_MINOR_VERSION)

/* ---- GIL modes ----------------------------------------------------------
 * PYH_HAVE_OWN_GIL: PEP 684 sub-interpreters with their own GIL (3.12+).
 * PYH_FREE_THREADED: a PEP 703 build (3.13t+, configure --disable-gil),
 * whose stdlib lives in lib/python3.Xt and whose GIL is chosen at start. */
#if PY_VERSION_HEX >= 0x030C0000
#define PYH_HAVE_OWN_GIL 1
#else
#define PYH_HAVE_OWN_GIL 0
#endif

/* PYH_ASYNCIO_ACCEL_SHARED: asyncio's C accelerator (_asyncio) keeps the
 * running loop in process-wide statics keyed by a thread state id that
 * each interpreter numbers from 1 (before 3.12, which gave it module
 * state): in a sub-interpreter, a loop thread can be told that another
 * interpreter's loop is running on it. */
#define PYH_ASYNCIO_ACCEL_SHARED (PY_VERSION_HEX < 0x030C0000)

#ifdef Py_GIL_DISABLED
#define PYH_FREE_THREADED 1
#define PYH_ABI_TAG "t"
#define PYH_BUILD_DESC "free-threaded"
#else
#define PYH_FREE_THREADED 0
#define PYH_ABI_TAG ""
#define PYH_BUILD_DESC "with the GIL"
#endif

/* lib/<this> of a prefix holds the stdlib: "python3.14" or "python3.14t". */
#define PYH_PY_LIBDIR_STR "python" PYH_PY_VERSION_STR PYH_ABI_TAG

/* pyh_lock: guards C state that the GIL (the interpreter's own, with a
 * per-interpreter GIL) protects on ordinary builds: apr hash tables and
 * pools of one interpreter, fields of a loaded script. Without a GIL it
 * is a PyMutex, which detaches the thread state while it waits (so a
 * stop-the-world pause cannot deadlock on it); with one it costs nothing.
 * Zeroed memory is an unlocked pyh_lock. Never held across Python code
 * that may block on another pyh_lock. */
#if PYH_FREE_THREADED
typedef PyMutex pyh_lock;
#define PYH_LOCK(l) PyMutex_Lock(l)
#define PYH_UNLOCK(l) PyMutex_Unlock(l)
#else
typedef struct { char unused; } pyh_lock;
#define PYH_LOCK(l) ((void)(l))
#define PYH_UNLOCK(l) ((void)(l))
#endif

/* Per-object critical sections (3.13+): serialize C methods that mutate
 * an object shared between threads (sys.stdout's line buffer). The GIL
 * does that on other builds, where the macros are empty blocks. */
#if PYH_FREE_THREADED
#define PYH_BEGIN_CRITICAL_SECTION(o) Py_BEGIN_CRITICAL_SECTION(o)
#define PYH_END_CRITICAL_SECTION() Py_END_CRITICAL_SECTION()
#else
#define PYH_BEGIN_CRITICAL_SECTION(o) {
#define PYH_END_CRITICAL_SECTION() }
#endif

/* Whether the GIL runs in this process: sys._is_gil_enabled() on a
 * free-threaded build (an extension without Py_mod_gil can turn it back
 * on), always 1 otherwise. GIL (or attached thread state) held; 1 if it cannot tell. */
static inline int pyh_gil_enabled(void)
{
#if PYH_FREE_THREADED
    PyObject *sys = PyImport_ImportModule("sys"), *res = NULL;
    int on = 1;
    if (sys)
        res = PyObject_CallMethod(sys, "_is_gil_enabled", NULL);
    Py_XDECREF(sys);
    if (res)
        on = PyObject_IsTrue(res) != 0;
    Py_XDECREF(res);
    PyErr_Clear();
    return on;
#else
    return 1;
#endif
}

/* Declaring "no GIL needed": Py_mod_gil (a PyModuleDef slot) and
 * PyUnstable_Module_SetGIL apply to extension modules loaded by import,
 * whose import turns the GIL back on unless they declare it unused.
 * mod_pyhost is no such module: Apache loads it, it embeds CPython, and
 * what it gives Python are heap types (PyType_FromSpec) and plain modules
 * (PyModule_New), which never re-enable the GIL; so the GIL mode is just
 * -X gil below, and its own C state is guarded by pyh_lock and critical
 * sections. tests/test_interpreters.py checks sys._is_gil_enabled() is
 * False in a served app with WSGIFreeThreading On. */

/* Chooses the process's GIL mode at Py_InitializeFromConfig (-X gil=0|1,
 * documented for free-threaded builds). Free-threaded builds run with the
 * GIL unless WSGIFreeThreading On asks otherwise, as mod_wsgi 6 does:
 * extensions and apps written for the GIL stay safe by default. On other
 * builds there is nothing to choose (config.c refuses On there). */
static inline PyStatus pyh_config_gil(PyConfig *config, int free_threading)
{
#if PYH_FREE_THREADED
    return PyWideStringList_Append(&config->xoptions,
                                   free_threading ? L"gil=0" : L"gil=1");
#else
    (void)config;
    (void)free_threading;
    return PyStatus_Ok();
#endif
}

/* A new sub-interpreter, made current with its GIL held, in *ts. With
 * own_gil (3.12+), it gets its own GIL and obmalloc state, so threads in
 * it run in parallel with other interpreters; single-phase-init extension
 * modules are refused there (check_multi_interp_extensions), daemon
 * threads and os.fork() too, as in the PEP 684 "isolated" configuration;
 * subprocess (fork+exec) stays allowed. The calling interpreter's GIL is
 * released by CPython in that case. Without own_gil: Py_NewInterpreter's
 * legacy sub-interpreter sharing the main GIL. Returns NULL on success or
 * CPython's message. */
static inline const char *pyh_new_interpreter(PyThreadState **ts, int own_gil)
{
#if PYH_HAVE_OWN_GIL
    if (own_gil) {
        PyInterpreterConfig cfg;
        PyStatus st;
        memset(&cfg, 0, sizeof(cfg));
        cfg.use_main_obmalloc = 0;
        cfg.allow_fork = 0;
        cfg.allow_exec = 1;
        cfg.allow_threads = 1;
        cfg.allow_daemon_threads = 0;
        cfg.check_multi_interp_extensions = 1;
        cfg.gil = PyInterpreterConfig_OWN_GIL;
        st = Py_NewInterpreterFromConfig(ts, &cfg);
        if (PyStatus_Exception(st)) {
            *ts = NULL;
            return st.err_msg ? st.err_msg : "Py_NewInterpreterFromConfig failed";
        }
        return NULL;
    }
#else
    (void)own_gil;
#endif
    *ts = Py_NewInterpreter();
    return *ts ? NULL : "Py_NewInterpreter failed";
}

#ifndef PYH_PYTHON_HOME
#error "PYH_PYTHON_HOME must name the prefix of the Python built against"
#endif

/* Py_NewRef arrived in 3.10. */
#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *pyh_newref(PyObject *o) { Py_INCREF(o); return o; }
#define Py_NewRef(o) pyh_newref((PyObject *)(o))
#endif

/* The pending exception, taken off and put back whole. 3.12 deprecated
 * PyErr_Fetch/PyErr_NormalizeException for the one-object calls. */
typedef struct {
    PyObject *type, *value, *tb;
} pyh_err;

/* Whether a taken exception is one CPython's calls may be given: C code
 * (an extension, ctypes.pythonapi) can leave any three objects in the
 * error state with PyErr_Restore, and before 3.12 nothing checks them
 * until PyException_SetTraceback or a traceback walk treats a
 * non-exception as an exception object and writes through it. */
static inline int pyh_err_well_formed(const pyh_err *e)
{
    return PyExceptionClass_Check(e->type) && e->value
           && PyExceptionInstance_Check(e->value)
           && (!e->tb || PyTraceBack_Check(e->tb));
}

/* Replaces a malformed pending exception with a TypeError that names what
 * was there (by type name only: running an unknown object's repr here
 * could raise again). */
static inline void pyh_err_sanitize(pyh_err *e)
{
    PyObject *t = e->type, *v = e->value, *b = e->tb;
    char what[256];

    PyOS_snprintf(what, sizeof(what),
                  "an invalid exception was raised (type %.60s, value "
                  "%.60s, traceback %.60s); was it restored from a bad "
                  "exc_info tuple?",
                  PyType_Check(t) ? ((PyTypeObject *)t)->tp_name
                                  : Py_TYPE(t)->tp_name,
                  v ? Py_TYPE(v)->tp_name : "NULL",
                  b ? Py_TYPE(b)->tp_name : "NULL");
    e->type = e->value = e->tb = NULL;
    PyErr_SetString(PyExc_TypeError, what);
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(b);
#if PY_VERSION_HEX >= 0x030C0000
    e->value = PyErr_GetRaisedException();
    e->type = e->value ? Py_NewRef((PyObject *)Py_TYPE(e->value)) : NULL;
    e->tb = e->value ? PyException_GetTraceback(e->value) : NULL;
#else
    PyErr_Fetch(&e->type, &e->value, &e->tb);
    PyErr_NormalizeException(&e->type, &e->value, &e->tb);
#endif
}

static inline void pyh_err_take(pyh_err *e)
{
#if PY_VERSION_HEX >= 0x030C0000
    e->value = PyErr_GetRaisedException();
    e->type = e->value ? Py_NewRef((PyObject *)Py_TYPE(e->value)) : NULL;
    e->tb = e->value ? PyException_GetTraceback(e->value) : NULL;
    if (e->type && !pyh_err_well_formed(e))
        pyh_err_sanitize(e);
#else
    PyErr_Fetch(&e->type, &e->value, &e->tb);
    if (!e->type)
        return;
    /* None where no traceback is: a bad PyErr_Restore can leave it, and a
     * later traceback walk takes it for a traceback object. */
    if (e->tb == Py_None)
        Py_CLEAR(e->tb);
    PyErr_NormalizeException(&e->type, &e->value, &e->tb);
    if (!pyh_err_well_formed(e)) {
        pyh_err_sanitize(e);
        if (!e->type || !pyh_err_well_formed(e))
            return;
    }
    if (e->tb && PyException_SetTraceback(e->value, e->tb) < 0)
        PyErr_Clear();
#endif
}

static inline void pyh_err_put(pyh_err *e)
{
#if PY_VERSION_HEX >= 0x030C0000
    Py_XDECREF(e->type);
    Py_XDECREF(e->tb);
    PyErr_SetRaisedException(e->value);
#else
    PyErr_Restore(e->type, e->value, e->tb);
#endif
}

static inline void pyh_err_clear(pyh_err *e)
{
    Py_CLEAR(e->type);
    Py_CLEAR(e->value);
    Py_CLEAR(e->tb);
}

/* A new reference to dict[key] in *out (NULL if absent): 1 found, 0 not,
 * -1 error. A borrowed reference is not safe without the GIL (another
 * thread may replace the item), hence PyDict_GetItemRef from 3.13 on. */
static inline int pyh_dict_get_ref(PyObject *dict, PyObject *key,
                                   PyObject **out)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyDict_GetItemRef(dict, key, out);
#else
    *out = PyDict_GetItemWithError(dict, key);
    if (*out) {
        Py_INCREF(*out);
        return 1;
    }
    return PyErr_Occurred() ? -1 : 0;
#endif
}

/* PyUnicode_READY is a no-op from 3.12 on and deprecated. */
#if PY_VERSION_HEX < 0x030C0000
#define PYH_UNICODE_READY(o) PyUnicode_READY(o)
#else
#define PYH_UNICODE_READY(o) 0
#endif

#endif
