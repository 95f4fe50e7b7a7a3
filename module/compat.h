/* compat.h - the one place where CPython version and build differences are
 * handled. Every module/ file includes this first, so that Python.h comes
 * before any system header as CPython requires. */
#ifndef PYHOST_COMPAT_H
#define PYHOST_COMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if PY_VERSION_HEX < 0x03090000
#error "pyhost needs Python 3.9 or newer"
#endif

/* Thread-local storage for per-thread interpreter state caches. */
#define PYH_THREAD_LOCAL __thread

#define PYH_PY_VERSION_STR \
    Py_STRINGIFY(PY_MAJOR_VERSION) "." Py_STRINGIFY(PY_MINOR_VERSION)

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

static inline void pyh_err_take(pyh_err *e)
{
#if PY_VERSION_HEX >= 0x030C0000
    e->value = PyErr_GetRaisedException();
    e->type = e->value ? Py_NewRef((PyObject *)Py_TYPE(e->value)) : NULL;
    e->tb = e->value ? PyException_GetTraceback(e->value) : NULL;
#else
    PyErr_Fetch(&e->type, &e->value, &e->tb);
    if (e->type) {
        PyErr_NormalizeException(&e->type, &e->value, &e->tb);
        if (e->tb && e->value)
            PyException_SetTraceback(e->value, e->tb);
    }
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

/* PyUnicode_READY is a no-op from 3.12 on and deprecated. */
#if PY_VERSION_HEX < 0x030C0000
#define PYH_UNICODE_READY(o) PyUnicode_READY(o)
#else
#define PYH_UNICODE_READY(o) 0
#endif

#endif
