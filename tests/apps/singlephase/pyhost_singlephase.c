/* A legacy (single-phase init) extension module: PyModule_Create from
 * PyInit_, no Py_mod_multiple_interpreters slot. Sub-interpreters with their
 * own GIL refuse it (check_multi_interp_extensions); the main interpreter
 * and legacy sub-interpreters load it. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *hello(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyUnicode_FromString("single-phase loaded");
}

static PyMethodDef methods[] = {
    {"hello", hello, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef def = {
    PyModuleDef_HEAD_INIT, "pyhost_singlephase", NULL, -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_pyhost_singlephase(void)
{
    return PyModule_Create(&def);
}
