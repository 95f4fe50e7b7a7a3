/* directives_compat.c - what makes pyhost a drop-in for a mod_wsgi
 * configuration beyond the core directives: the names <IfModule> guards
 * test, refusing to run next to mod_wsgi itself, mod_wsgi's option parsing
 * (quoted values), and the rest of mod_wsgi 6's directives and daemon
 * options, each either applied or accepted with one info line. */
#include "pyhost.h"

#include "http_core.h"
#include "ap_mpm.h"
#include "apr_strings.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>

pyh_compat_t pyh_compat;

/* ---- the names <IfModule> tests ------------------------------------------ */

/* <IfModule X> is true when a module record in the server's list is named
 * X (httpd's find_module: ap_find_linked_module, then mod_so's symbol
 * names). mod_wsgi configs are guarded by <IfModule mod_wsgi.c> (its
 * record's name) or <IfModule wsgi_module> (its LoadModule symbol). Two
 * empty records carrying those names stand in for mod_wsgi: no config, no
 * commands, no hooks. Exporting a `wsgi_module` symbol instead would let a
 * real mod_wsgi.so loaded after us bind its own record references to ours
 * (Apache loads modules RTLD_GLOBAL). */
static module compat_alias_records[] = {
    {STANDARD20_MODULE_STUFF, NULL, NULL, NULL, NULL, NULL, NULL,
     AP_MODULE_FLAG_NONE},
    {STANDARD20_MODULE_STUFF, NULL, NULL, NULL, NULL, NULL, NULL,
     AP_MODULE_FLAG_NONE},
};
static const char *const compat_alias_names[] = {"mod_wsgi.c", "wsgi_module"};
#define COMPAT_NALIASES \
    (sizeof(compat_alias_records) / sizeof(compat_alias_records[0]))

static int compat_is_alias(const module *m)
{
    return m >= compat_alias_records
           && m < compat_alias_records + COMPAT_NALIASES;
}

/* Runs before mod_so unloads our .so (its unload cleanup was registered
 * after ours; the dso's own cleanup before): the list must not keep
 * pointers into unmapped memory across a restart. */
static apr_status_t compat_remove_aliases(void *data)
{
    apr_size_t i;
    (void)data;
    for (i = 0; i < COMPAT_NALIASES; i++)
        if (compat_alias_records[i].module_index != -1)
            ap_remove_module(&compat_alias_records[i]);
    return APR_SUCCESS;
}

void pyh_compat_register_aliases(apr_pool_t *pconf)
{
    apr_size_t i;
    for (i = 0; i < COMPAT_NALIASES; i++) {
        module *m = &compat_alias_records[i];
        const char *err;
        if (m->module_index != -1)
            continue; /* a restart that kept our .so mapped */
        m->name = compat_alias_names[i];
        m->next = NULL;
        /* The symbol name gives the record a short name ("wsgi"), which
         * LogLevel and log lines use. */
        if ((err = ap_add_module(m, pconf, "wsgi_module")))
            ap_log_perror(APLOG_MARK, APLOG_WARNING, 0, pconf,
                          "PYH0114: could not register '%s' for <IfModule> "
                          "guards: %s",
                          m->name, err);
    }
    apr_pool_cleanup_register(pconf, NULL, compat_remove_aliases,
                              apr_pool_cleanup_null);
}

/* The real mod_wsgi in the same server: both would embed Python in the
 * same processes (Fatal Python error in the children). */
const char *pyh_compat_check_foreign(apr_pool_t *p)
{
    module *m;
    for (m = ap_top_module; m; m = m->next) {
        if (compat_is_alias(m) || !m->name || strcmp(m->name, "mod_wsgi.c"))
            continue;
        return apr_psprintf(p,
                            "PYH0110: mod_wsgi and mod_pyhost are both "
                            "loaded; they cannot share a server (both embed "
                            "Python): remove one of the two LoadModule lines "
                            "(pyhost serves mod_wsgi's directives as they "
                            "are)");
    }
    return NULL;
}

/* ---- option parsing -------------------------------------------------------- */

/* One name=value option of WSGIScriptAlias, WSGIImportScript or
 * WSGIDaemonProcess, as mod_wsgi parses them: the value may be quoted
 * (process-group='name', python-path="/a b"), or the whole option
 * ("name=value", as cfg_asgi_options hands them back). Returns 0 at the
 * end of the line, 1 with an option, -1 for a word that is not name=value
 * (*name is then the word). */
int pyh_compat_parse_option(apr_pool_t *p, const char **line,
                            const char **name, const char **value)
{
    const char *s = *line, *e;
    while (*s && apr_isspace(*s))
        s++;
    if (!*s) {
        *line = s;
        return 0;
    }
    if (*s == '"' || *s == '\'') {
        /* a whole option in quotes ("name=value"): split after unquoting */
        const char *word, *eq;
        *line = s;
        word = ap_getword_conf(p, line);
        if (!(eq = strchr(word, '=')) || eq == word) {
            *name = word;
            return -1;
        }
        *name = apr_pstrmemdup(p, word, eq - word);
        *value = eq + 1;
        return 1;
    }
    e = s;
    while (*e && *e != '=' && !apr_isspace(*e))
        e++;
    if (*e != '=' || e == s) {
        *line = s;
        *name = ap_getword_conf(p, line);
        return -1;
    }
    *name = apr_pstrmemdup(p, s, e - s);
    *line = e + 1;
    *value = ap_getword_conf(p, line);
    return 1;
}

/* ---- mod_wsgi directives pyhost accepts without acting on ----------------- */

/* Notes are logged once the error log is open (pyh_compat_log_notes). */
static void compat_note(cmd_parms *cmd, const char *text)
{
    if (!pyh_compat.notes)
        return;
    *(const char **)apr_array_push(pyh_compat.notes) =
        apr_psprintf(cmd->pool, "%s (%s:%d)", text,
                     cmd->directive->filename, cmd->directive->line_num);
}

void pyh_compat_reset(apr_pool_t *p)
{
    memset(&pyh_compat, 0, sizeof(pyh_compat));
    pyh_compat.notes = apr_array_make(p, 4, sizeof(const char *));
    pyh_compat.warnings = apr_array_make(p, 2, sizeof(const char *));
    pyh_compat.optimize = -1;
    pyh_compat.dont_write_bytecode = -1;
    pyh_compat.switch_interval = -1.0;
    pyh_compat.restrict_signal = 1; /* mod_wsgi's default */
    pyh_compat.blocks = apr_array_make(p, 2, sizeof(void *));
}

void pyh_compat_log_notes(server_rec *s)
{
    int i;
    for (i = 0; i < pyh_compat.notes->nelts; i++)
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "PYH0111: %s",
                     APR_ARRAY_IDX(pyh_compat.notes, i, const char *));
}

const char *pyh_compat_accept(cmd_parms *cmd, void *dconf, const char *args)
{
    (void)dconf;
    (void)args;
    compat_note(cmd, apr_pstrcat(cmd->pool, cmd->cmd->name,
                                 " accepted and ignored: ",
                                 (const char *)cmd->info, NULL));
    return NULL;
}

static const char *compat_flag(cmd_parms *cmd, const char *v, int *out)
{
    if (!strcasecmp(v, "On"))
        *out = 1;
    else if (!strcasecmp(v, "Off"))
        *out = 0;
    else
        return apr_psprintf(cmd->pool, "%s takes On or Off, not '%s'",
                            cmd->cmd->name, v);
    return NULL;
}

/* ---- <WSGIInterpreterOptions> ------------------------------------------------ */

/* mod_wsgi 6: a section scoping per-interpreter settings to a process group
 * and/or an application group. For each setting the matching block with
 * the most selectors wins, the later one on a tie; unset falls back to the
 * directive outside any block. */
typedef struct {
    const char *process_group;     /* NULL: any; "" %{GLOBAL} (embedded) */
    const char *application_group; /* NULL: any; "" %{GLOBAL} */
    int restrict_stdin, restrict_stdout, restrict_signal; /* -1 unset */
    int per_interpreter_gil, free_threading;              /* -1 unset */
    double switch_interval;                               /* <= 0 unset */
    const char *python_path;                              /* NULL unset */
} compat_block;

static compat_block *compat_active_block(cmd_parms *cmd)
{
    const ap_directive_t *parent = cmd->directive ? cmd->directive->parent
                                                  : NULL;
    if (parent && !strcasecmp(parent->directive, "<WSGIInterpreterOptions"))
        return parent->data;
    return NULL;
}

int pyh_compat_in_block(cmd_parms *cmd)
{
    return compat_active_block(cmd) != NULL;
}

const char *pyh_compat_options_section(cmd_parms *cmd, void *dconf,
                                       const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY), *end;
    const char *args, *name, *value = NULL;
    compat_block *b;
    int got;
    (void)dconf;
    if (err)
        return err;
    if (!(end = ap_strrchr_c(arg, '>')))
        return "<WSGIInterpreterOptions> is missing its closing '>'";
    args = apr_pstrmemdup(cmd->pool, arg, (apr_size_t)(end - arg));
    b = apr_pcalloc(cmd->pool, sizeof(*b));
    b->restrict_stdin = b->restrict_stdout = b->restrict_signal = -1;
    b->per_interpreter_gil = b->free_threading = -1;
    while ((got = pyh_compat_parse_option(cmd->pool, &args, &name, &value))) {
        const char **sel = NULL;
        if (got > 0 && !strcmp(name, "process-group"))
            sel = &b->process_group;
        else if (got > 0 && !strcmp(name, "application-group"))
            sel = &b->application_group;
        if (!sel)
            return apr_psprintf(cmd->pool,
                                "<WSGIInterpreterOptions>: '%s' is not "
                                "process-group=NAME or application-group=NAME",
                                name);
        if (*sel)
            return apr_psprintf(cmd->pool, "<WSGIInterpreterOptions>: %s "
                                "given twice", name);
        *sel = strcmp(value, "%{GLOBAL}") ? value : "";
    }
    *(compat_block **)apr_array_push(pyh_compat.blocks) = b;
    cmd->directive->data = b;
    return ap_walk_config(cmd->directive->first_child, cmd,
                          cmd->server->lookup_defaults);
}

/* A directive inside a block: only the per-interpreter ones belong. */
const char *pyh_compat_block_set(cmd_parms *cmd, const char *v)
{
    compat_block *b = compat_active_block(cmd);
    const char *name = cmd->cmd->name;
    int *flag = NULL;
    if (!strcasecmp(name, "WSGIRestrictStdin"))
        flag = &b->restrict_stdin;
    else if (!strcasecmp(name, "WSGIRestrictStdout"))
        flag = &b->restrict_stdout;
    else if (!strcasecmp(name, "WSGIRestrictSignal"))
        flag = &b->restrict_signal;
    else if (!strcasecmp(name, "WSGIPerInterpreterGIL")) {
        if (!strcasecmp(v, "On") && !PYH_HAVE_OWN_GIL)
            return "PYH0060: WSGIPerInterpreterGIL On needs Python 3.12 or "
                   "newer (PEP 684)";
        flag = &b->per_interpreter_gil;
    }
    else if (!strcasecmp(name, "WSGIFreeThreading")) {
        if (b->application_group)
            return "WSGIFreeThreading is process-wide: inside "
                   "<WSGIInterpreterOptions> only with process-group= alone";
        if (!strcasecmp(v, "On") && !PYH_FREE_THREADED)
            return "PYH0061: WSGIFreeThreading On needs a free-threaded "
                   "Python (3.13t or newer)";
        flag = &b->free_threading;
    }
    else if (!strcasecmp(name, "WSGISwitchInterval")) {
        char *end;
        b->switch_interval = strtod(v, &end);
        if (!*v || *end || !(b->switch_interval > 0))
            return apr_psprintf(cmd->pool, "WSGISwitchInterval takes a "
                                "number of seconds > 0, not '%s'", v);
        return NULL;
    }
    else if (!strcasecmp(name, "WSGIPythonPath")) {
        b->python_path = v;
        return NULL;
    }
    else
        return apr_psprintf(cmd->pool,
                            "%s is not allowed inside <WSGIInterpreterOptions>"
                            " (only WSGIPythonPath, WSGISwitchInterval, "
                            "WSGIRestrictStdin/Stdout/Signal, "
                            "WSGIPerInterpreterGIL, WSGIFreeThreading)",
                            name);
    return compat_flag(cmd, v, flag);
}

/* How many selectors block b matches for application group ag (NULL: any
 * block without an application-group) in this process, -1 for none. */
static int compat_block_match(const compat_block *b, const char *ag)
{
    const char *pg = pyh_this_daemon ? pyh_this_daemon->name : "";
    int n = 0;
    if (b->process_group) {
        if (strcmp(b->process_group, pg))
            return -1;
        n++;
    }
    if (b->application_group) {
        if (!ag || strcmp(b->application_group, ag))
            return -1;
        n++;
    }
    return n;
}

/* The effective int setting at `offset` of compat_block for group ag. */
int pyh_compat_block_int(apr_size_t offset, const char *ag, int dflt)
{
    int i, best = -1, v = dflt;
    for (i = 0; pyh_compat.blocks && i < pyh_compat.blocks->nelts; i++) {
        const compat_block *b = APR_ARRAY_IDX(pyh_compat.blocks, i,
                                              compat_block *);
        int n = compat_block_match(b, ag);
        int bv = *(const int *)((const char *)b + offset);
        if (n >= 0 && bv >= 0 && n >= best) {
            best = n;
            v = bv;
        }
    }
    return v;
}

static double compat_block_switch_interval(const char *ag)
{
    int i, best = -1;
    /* a daemon's switch-interval= is its processes' WSGISwitchInterval */
    double v = pyh_this_daemon && pyh_this_daemon->switch_interval > 0
                   ? pyh_this_daemon->switch_interval
                   : pyh_compat.switch_interval;
    for (i = 0; i < pyh_compat.blocks->nelts; i++) {
        const compat_block *b = APR_ARRAY_IDX(pyh_compat.blocks, i,
                                              compat_block *);
        int n = compat_block_match(b, ag);
        if (n >= 0 && b->switch_interval > 0 && n >= best) {
            best = n;
            v = b->switch_interval;
        }
    }
    return v;
}

/* The python-path of every matching block, least specific first (each
 * goes through site.addsitedir, as in mod_wsgi), colon-joined. */
static const char *compat_block_python_path(apr_pool_t *p, const char *ag)
{
    const char *out = "";
    int level, i;
    for (level = 0; level <= 2; level++)
        for (i = 0; i < pyh_compat.blocks->nelts; i++) {
            const compat_block *b = APR_ARRAY_IDX(pyh_compat.blocks, i,
                                                  compat_block *);
            if (b->python_path && compat_block_match(b, ag) == level)
                out = apr_pstrcat(p, out, *out ? ":" : "", b->python_path,
                                  NULL);
        }
    return out;
}

#define COMPAT_BLOCK(field) APR_OFFSETOF(compat_block, field)

int pyh_compat_own_gil(const char *ag, int dflt)
{
    return pyh_compat_block_int(COMPAT_BLOCK(per_interpreter_gil), ag, dflt);
}

int pyh_compat_free_threading(int dflt)
{
    return pyh_compat_block_int(COMPAT_BLOCK(free_threading), NULL, dflt);
}

/* Process-wide Python settings (mod_wsgi: main server context only). */
const char *pyh_compat_python_setting(cmd_parms *cmd, void *dconf,
                                         const char *v)
{
    const char *name = cmd->cmd->name, *err;
    char *end;
    (void)dconf;
    if (compat_active_block(cmd))
        return pyh_compat_block_set(cmd, v);
    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY)))
        return err;
    if (!strcasecmp(name, "WSGIPythonOptimize")) {
        long n = strtol(v, &end, 10);
        if (!*v || *end || n < 0 || n > 2)
            return apr_psprintf(cmd->pool,
                                "WSGIPythonOptimize takes 0, 1 or 2, not '%s'",
                                v);
        pyh_compat.optimize = (int)n;
    }
    else if (!strcasecmp(name, "WSGIPythonHashSeed")) {
        unsigned long long n;
        if (!strcmp(v, "random")) {
            pyh_compat.hash_seed_set = 1;
            pyh_compat.hash_seed_random = 1;
            return NULL;
        }
        errno = 0;
        n = strtoull(v, &end, 10);
        if (!*v || *end || errno || v[0] == '-' || n > 4294967295ULL)
            return apr_psprintf(cmd->pool,
                                "WSGIPythonHashSeed takes 'random' or a number "
                                "from 0 to 4294967295, not '%s'",
                                v);
        pyh_compat.hash_seed_set = 1;
        pyh_compat.hash_seed_random = 0;
        pyh_compat.hash_seed = (unsigned long)n;
    }
    else if (!strcasecmp(name, "WSGIPythonWarnings")) {
        *(const char **)apr_array_push(pyh_compat.warnings) = v;
    }
    else if (!strcasecmp(name, "WSGIDontWriteBytecode")) {
        return compat_flag(cmd, v, &pyh_compat.dont_write_bytecode);
    }
    else if (!strcasecmp(name, "WSGISwitchInterval")) {
        double d;
        errno = 0;
        d = strtod(v, &end);
        if (!*v || *end || errno || !(d > 0))
            return apr_psprintf(cmd->pool,
                                "WSGISwitchInterval takes a number of seconds "
                                "> 0, not '%s'",
                                v);
        pyh_compat.switch_interval = d;
    }
    else if (!strcasecmp(name, "WSGIRestrictStdout")) {
        return compat_flag(cmd, v, &pyh_compat.restrict_stdout);
    }
    else if (!strcasecmp(name, "WSGIRestrictStdin")) {
        return compat_flag(cmd, v, &pyh_compat.restrict_stdin);
    }
    else if (!strcasecmp(name, "WSGIRestrictSignal")) {
        return compat_flag(cmd, v, &pyh_compat.restrict_signal);
    }
    else if (!strcasecmp(name, "WSGIServerMetrics")) {
        return compat_flag(cmd, v, &pyh_compat.server_metrics);
    }
    return NULL;
}

/* PyConfig fields from WSGIPythonOptimize, WSGIPythonHashSeed,
 * WSGIPythonWarnings and WSGIDontWriteBytecode (interp.c, before
 * Py_InitializeFromConfig). */
PyStatus pyh_compat_pyconfig(PyConfig *config)
{
    PyStatus st = PyStatus_Ok();
    int i;
    if (pyh_compat.optimize >= 0)
        config->optimization_level = pyh_compat.optimize;
    if (pyh_compat.dont_write_bytecode >= 0)
        config->write_bytecode = !pyh_compat.dont_write_bytecode;
    if (pyh_compat.hash_seed_set) {
        config->use_hash_seed = !pyh_compat.hash_seed_random;
        config->hash_seed = pyh_compat.hash_seed;
    }
    for (i = 0; i < pyh_compat.warnings->nelts; i++) {
        wchar_t *w = Py_DecodeLocale(
            APR_ARRAY_IDX(pyh_compat.warnings, i, const char *), NULL);
        if (!w)
            return PyStatus_NoMemory();
        st = PyWideStringList_Append(&config->warnoptions, w);
        PyMem_RawFree(w);
        if (PyStatus_Exception(st))
            return st;
    }
    return st;
}

/* The Python side of pyh_compat_interp_setup, run with its values as
 * globals (_pg, _ag, _out, _sig, ...). */
static const char compat_setup_code[] =
    "import sys, types\n"
    "m = types.ModuleType('mod_wsgi', 'pyhost in place of mod_wsgi')\n"
    "m.version = (6, 0, 0)\n"
    "m.pyhost_version = _pyhost\n"
    "m.process_group = _pg\n"
    "m.application_group = _ag\n"
    "m.maximum_processes = _procs\n"
    "m.threads_per_process = _threads\n"
    /* process_metrics() / server_metrics() with mod_wsgi 6's key
     * names where pyhost counts the figure (metrics.c), and its
     * opt-ins: start_recording_metrics() for the first, WSGIServer-
     * Metrics On (server-metrics=On in a daemon) for the second. */
    "import os, time, resource\n"
    "def _snap():\n"
    "    try:\n"
    "        import _pyhost_metrics\n"
    "    except ImportError:\n"
    "        return None\n"
    "    return _pyhost_metrics.snapshot()\n"
    "def _started():\n"
    "    with open('/proc/self/stat') as f:\n"
    "        ticks = int(f.read().rsplit(')', 1)[1].split()[19])\n"
    "    with open('/proc/stat') as f:\n"
    "        boot = next(int(l.split()[1]) for l in f if l.startswith('btime'))\n"
    "    return boot + ticks / os.sysconf('SC_CLK_TCK')\n"
    "_state = {'recording': False}\n"
    "def start_recording_metrics():\n"
    "    _state['recording'] = True\n"
    "def process_metrics():\n"
    "    snap = _snap() if _state['recording'] else None\n"
    "    if snap is None:\n"
    "        return None\n"
    "    p, t, now = snap['process'], os.times(), time.time()\n"
    "    start = _started()\n"
    "    out = {'pid': p['pid'], 'memory_rss': p['resident_memory_bytes'],\n"
    "           'memory_max_rss': resource.getrusage(\n"
    "               resource.RUSAGE_SELF).ru_maxrss * 1024,\n"
    "           'cpu_user_time': t.user, 'cpu_system_time': t.system,\n"
    "           'cpu_time': t.user + t.system, 'restart_time': start,\n"
    "           'current_time': now, 'running_time': int(now - start)}\n"
    "    if 'threads' in p:\n"
    "        out['request_threads'] = p['threads']\n"
    "        out['active_requests'] = p['busy_threads']\n"
    "    if 'requests' in p:\n"
    "        out['request_count'] = p['requests']\n"
    "        out['request_busy_time'] = p['app_seconds']\n"
    "    return out\n"
    "def server_metrics():\n"
    "    snap = _snap() if _srvm else None\n"
    "    if snap is None:\n"
    "        return None\n"
    "    return {'server_limit': _slimit, 'thread_limit': _tlimit,\n"
    "            'current_time': time.time(), 'pyhost': snap['server']}\n"
    "m.start_recording_metrics = start_recording_metrics\n"
    "m.process_metrics = process_metrics\n"
    "m.server_metrics = server_metrics\n"
    "sys.modules.setdefault('mod_wsgi', m)\n"
    "class Restricted:\n"
    "    __slots__ = ('_what',)\n"
    "    def __init__(self, what):\n"
    "        object.__setattr__(self, '_what', what)\n"
    "    def __getattribute__(self, name):\n"
    "        raise OSError('%s access restricted by mod_wsgi' %\n"
    "                      object.__getattribute__(self, '_what'))\n"
    "if _out:\n"
    "    sys.stdout = Restricted('sys.stdout')\n"
    "if _in:\n"
    "    sys.stdin = Restricted('sys.stdin')\n"
    "if _si > 0:\n"
    "    sys.setswitchinterval(_si)\n"
    /* <WSGIInterpreterOptions>'s WSGIPythonPath, as mod_wsgi adds it */
    "if _path:\n"
    "    import site\n"
    "    for _d in _path.split(':'):\n"
    "        site.addsitedir(_d)\n"
    /* WSGIRestrictSignal (mod_wsgi, On by default): Apache owns the
     * process's signals; a handler an app registers would replace
     * Apache's (a daemon's SIGTERM among them). The call returns the
     * handler as if it had been set, and says so in the log. A process
     * the app forked is its own: there the call goes through. */
    "if _sig:\n"
    "    import os, signal, traceback\n"
    "    def _restricted(signalnum, handler, _real=signal.signal,\n"
    "                    _pid=os.getpid(), _log=_sig):\n"
    "        if os.getpid() != _pid:\n"
    "            return _real(signalnum, handler)\n"
    "        where = traceback.extract_stack(limit=2)[0]\n"
    "        _log.write('PYH0127: signal.signal(%s) ignored: pyhost "
    "(WSGIRestrictSignal On) keeps Apache\\'s signal handlers; called "
    "from %s:%s\\n' % (int(signalnum), where.filename, where.lineno))\n"
    "        return handler\n"
    "    _restricted.__wrapped__ = signal.signal\n"
    "    signal.signal = _restricted\n";

/* Per interpreter, with its GIL, once log.c has pointed stdout at the
 * log: an importable `mod_wsgi` module with what apps and libraries read
 * from mod_wsgi's (process_group, application_group, maximum_processes,
 * threads_per_process, version, process_metrics(), server_metrics());
 * WSGIRestrictStdout/Stdin (sys.stdout / sys.stdin become objects whose
 * every attribute raises OSError, as in mod_wsgi, so a print() fails
 * loudly instead of writing to the log); WSGIRestrictSignal;
 * WSGISwitchInterval; and <WSGIInterpreterOptions>'s WSGIPythonPath, each
 * as it resolves for this interpreter. */
int pyh_compat_interp_setup(pyh_interp *in)
{
    PyObject *globals, *res, *siglog;
    int procs = 1, threads = 1, slimit = 1, tlimit = 1, srvm, rsig, rout, rin;
    const char *ag;
    apr_pool_t *tmp;
    if (pyh_this_daemon) {
        procs = pyh_this_daemon->processes;
        threads = pyh_this_daemon->threads;
    }
    else {
        if (ap_mpm_query(AP_MPMQ_MAX_DAEMONS, &procs) != APR_SUCCESS)
            procs = 1;
        if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) != APR_SUCCESS
            || threads < 1)
            threads = 1;
    }
    if (ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &slimit) != APR_SUCCESS)
        slimit = 1;
    if (ap_mpm_query(AP_MPMQ_HARD_LIMIT_THREADS, &tlimit) != APR_SUCCESS)
        tlimit = 1;
    srvm = pyh_this_daemon ? pyh_this_daemon->server_metrics
                           : pyh_compat.server_metrics;
    ag = in->name ? in->name : "";
    rsig = pyh_compat_block_int(COMPAT_BLOCK(restrict_signal), ag,
                                pyh_compat.restrict_signal);
    rout = pyh_compat_block_int(COMPAT_BLOCK(restrict_stdout), ag,
                                pyh_compat.restrict_stdout);
    rin = pyh_compat_block_int(COMPAT_BLOCK(restrict_stdin), ag,
                               pyh_compat.restrict_stdin);
    if (apr_pool_create(&tmp, NULL) != APR_SUCCESS) {
        PyErr_NoMemory();
        return -1;
    }
    if (rsig) {
        if (!(siglog = pyh_log_new(in, NULL, APLOG_WARNING))) {
            apr_pool_destroy(tmp);
            return -1;
        }
    }
    else {
        siglog = Py_NewRef(Py_False);
    }
    globals = Py_BuildValue(
              "{s:O,s:s,s:s,s:s,s:i,s:i,s:i,s:i,s:d,s:N,s:i,s:i,s:i,s:s}",
              "__builtins__",
              PyEval_GetBuiltins(), "_pyhost", PYH_VERSION, "_pg",
              pyh_this_daemon ? pyh_this_daemon->name : "", "_ag",
              in->name ? in->name : "", "_procs", procs, "_threads", threads,
              "_out", rout, "_in", rin, "_si",
              compat_block_switch_interval(ag), "_sig", siglog, "_srvm", srvm,
              "_slimit", slimit, "_tlimit", tlimit, "_path",
              compat_block_python_path(tmp, ag));
    apr_pool_destroy(tmp);
    if (!globals)
        return -1;
    res = PyRun_String(compat_setup_code, Py_file_input, globals, globals);
    Py_DECREF(globals);
    if (!res)
        return -1;
    Py_DECREF(res);
    return 0;
}

/* ---- WSGIDaemonProcess options pyhost accepts without applying ----------- */

/* mod_wsgi 6 options of WSGIDaemonProcess that pyhost's daemons do not act
 * on (config.c handles the rest): accepted, noted once at startup. */
static const struct {
    const char *name;
    const char *why;
} compat_daemon_options[] = {
    {"python-eggs", "Python eggs are obsolete"},
    {"deadlock-timeout", "no deadlock watchdog"},
    {"interrupt-timeout", "requests are not interrupted"},
    {"eviction-timeout", "graceful-timeout applies on eviction"},
    {"header-buffer-size", "headers are sized as they come"},
    {"response-buffer-size", "responses stream without a fixed buffer"},
    {"response-socket-timeout", "socket-timeout applies"},
    {"response-flush-delay", "responses are flushed as written"},
};

/* 1: name is one of those options (noted), 0: not one of them. */
int pyh_compat_daemon_option(cmd_parms *cmd, const char *group,
                             const char *name, const char *value)
{
    apr_size_t i, n = sizeof(compat_daemon_options)
                      / sizeof(compat_daemon_options[0]);
    for (i = 0; i < n; i++)
        if (!strcmp(name, compat_daemon_options[i].name)) {
            compat_note(cmd, apr_psprintf(cmd->pool,
                                          "WSGIDaemonProcess %s: %s=%s "
                                          "accepted and ignored: %s",
                                          group, name, value,
                                          compat_daemon_options[i].why));
            return 1;
        }
    return 0;
}

/* ---- WSGITrustedProxyHeaders / WSGITrustedProxies ------------------------ */

/* What a trusted proxy header overrides; headers of one kind are synonyms,
 * of which only the one that was applied reaches the app. */
enum { PX_CLIENT, PX_HOST, PX_SERVER, PX_PORT, PX_SCHEME, PX_KINDS };
static const struct {
    const char *name; /* as the request header is named */
    int kind;
    int flag;         /* PX_SCHEME: a boolean (X-Forwarded-HTTPS: On) */
} compat_proxy_headers[] = {
    {"X-Forwarded-For", PX_CLIENT, 0},    {"X-Client-IP", PX_CLIENT, 0},
    {"X-Real-IP", PX_CLIENT, 0},          {"X-Forwarded-Host", PX_HOST, 0},
    {"X-Host", PX_HOST, 0},               {"X-Forwarded-Server", PX_SERVER, 0},
    {"X-Forwarded-Port", PX_PORT, 0},     {"X-Forwarded-Proto", PX_SCHEME, 0},
    {"X-Forwarded-Scheme", PX_SCHEME, 0}, {"X-Scheme", PX_SCHEME, 0},
    {"X-Forwarded-HTTPS", PX_SCHEME, 1},  {"X-Forwarded-SSL", PX_SCHEME, 1},
    {"X-HTTPS", PX_SCHEME, 1},
};
#define COMPAT_NPROXY \
    (int)(sizeof(compat_proxy_headers) / sizeof(compat_proxy_headers[0]))

/* mod_wsgi names them as environ keys (HTTP_X_FORWARDED_FOR) or headers. */
static int compat_proxy_header_index(const char *name)
{
    int i;
    const char *n = strncasecmp(name, "HTTP_", 5) ? name : name + 5;
    for (i = 0; i < COMPAT_NPROXY; i++) {
        const char *a = compat_proxy_headers[i].name, *b = n;
        while (*a && *b
               && (apr_tolower(*a) == apr_tolower(*b)
                   || (*a == '-' && *b == '_')))
            a++, b++;
        if (!*a && !*b)
            return i;
    }
    return -1;
}

const char *pyh_compat_trusted_proxy_headers(cmd_parms *cmd, void *dconf,
                                             const char *args)
{
    pyh_dir_conf *c = dconf;
    apr_array_header_t *a = apr_array_make(cmd->pool, 4, sizeof(int));
    while (*args) {
        const char *w = ap_getword_conf(cmd->pool, &args);
        int i;
        if (!*w)
            break;
        if ((i = compat_proxy_header_index(w)) < 0)
            return apr_psprintf(cmd->pool,
                                "WSGITrustedProxyHeaders: '%s' is not a "
                                "proxy header mod_wsgi knows (X-Forwarded-For, "
                                "X-Client-IP, X-Real-IP, X-Forwarded-Host, "
                                "X-Host, X-Forwarded-Server, X-Forwarded-Port, "
                                "X-Forwarded-Proto, X-Forwarded-Scheme, "
                                "X-Scheme, X-Forwarded-HTTPS, X-Forwarded-SSL, "
                                "X-HTTPS)",
                                w);
        *(int *)apr_array_push(a) = i;
    }
    c->trusted_proxy_headers = a;
    return NULL;
}

const char *pyh_compat_trusted_proxies(cmd_parms *cmd, void *dconf,
                                       const char *args)
{
    pyh_dir_conf *c = dconf;
    apr_array_header_t *a =
        apr_array_make(cmd->pool, 4, sizeof(apr_ipsubnet_t *));
    while (*args) {
        char *w = ap_getword_conf(cmd->pool, &args), *mask;
        apr_ipsubnet_t *sub;
        if (!*w)
            break;
        if ((mask = strchr(w, '/')))
            *mask++ = '\0';
        if (apr_ipsubnet_create(&sub, w, mask, cmd->pool) != APR_SUCCESS)
            return apr_psprintf(cmd->pool,
                                "WSGITrustedProxies: '%s%s%s' is not an IP "
                                "address or network",
                                w, mask ? "/" : "", mask ? mask : "");
        *(apr_ipsubnet_t **)apr_array_push(a) = sub;
    }
    c->trusted_proxies = a;
    return NULL;
}

static int compat_ip_trusted(request_rec *r, const apr_array_header_t *nets,
                             const char *ip, apr_sockaddr_t *sa)
{
    int i;
    if (!sa) {
        const char *p = ip;
        if (!*p)
            return 0;
        for (; *p; p++) /* numeric only: never a DNS lookup */
            if (!apr_isxdigit(*p) && *p != '.' && *p != ':')
                return 0;
        if (apr_sockaddr_info_get(&sa, ip, APR_UNSPEC, 0, 0, r->pool)
            != APR_SUCCESS)
            return 0;
    }
    for (i = 0; i < nets->nelts; i++)
        if (apr_ipsubnet_test(APR_ARRAY_IDX(nets, i, apr_ipsubnet_t *), sa))
            return 1;
    return 0;
}

/* The client of X-Forwarded-For: without WSGITrustedProxies the first
 * entry; with it, the entry before the trusted proxies at its end. */
static const char *compat_forwarded_for(request_rec *r, const char *value,
                                        const apr_array_header_t *nets)
{
    apr_array_header_t *items = apr_array_make(r->pool, 4, sizeof(char *));
    char *list = apr_pstrdup(r->pool, value), *tok, *state;
    int i;
    for (tok = apr_strtok(list, ",", &state); tok;
         tok = apr_strtok(NULL, ",", &state)) {
        char *end;
        while (apr_isspace(*tok))
            tok++;
        end = tok + strlen(tok);
        while (end > tok && apr_isspace(end[-1]))
            *--end = '\0';
        if (*tok) /* RFC 9110: empty list elements are ignored */
            *(char **)apr_array_push(items) = tok;
    }
    if (!items->nelts)
        return NULL;
    if (!nets)
        return APR_ARRAY_IDX(items, 0, char *);
    for (i = items->nelts - 1; i > 0; i--)
        if (!compat_ip_trusted(r, nets, APR_ARRAY_IDX(items, i, char *), NULL))
            break;
    return APR_ARRAY_IDX(items, i, char *);
}

/* A port as a proxy header gives it: 1..65535, digits only; 0 otherwise. */
static int compat_port(const char *s, const char *end)
{
    int port = 0;
    if (s == end)
        return 0;
    for (; s < end; s++)
        if (!apr_isdigit(*s) || (port = port * 10 + (*s - '0')) > 65535)
            return 0;
    return port;
}

/* An ASGI scope's "server" (host, port): the forwarded server name or the
 * forwarded host, and the forwarded port or the host's own one. */
static void compat_server(request_rec *r, pyh_proxy_view *pv)
{
    int port = 0;
    if (pv->host) {
        /* host[:port] or [v6][:port]; a bare v6 address has no port */
        const char *h = pv->host, *end = h + strlen(h), *colon;
        if (*h == '[' && (colon = strchr(h, ']'))) {
            if (colon[1] == ':')
                port = compat_port(colon + 2, end);
            pv->server_host =
                apr_pstrmemdup(r->pool, h + 1, (apr_size_t)(colon - h - 1));
        }
        else if ((colon = strchr(h, ':')) && !strchr(colon + 1, ':')) {
            port = compat_port(colon + 1, end);
            pv->server_host =
                apr_pstrmemdup(r->pool, h, (apr_size_t)(colon - h));
        }
        else
            pv->server_host = h;
    }
    if (pv->server)
        pv->server_host = pv->server;
    if (pv->port) {
        int p = compat_port(pv->port, pv->port + strlen(pv->port));
        if (p)
            port = p;
    }
    pv->server_port = port;
}

/* As mod_wsgi: the headers named by WSGITrustedProxyHeaders, sent by a
 * peer in WSGITrustedProxies (any peer when that is unset), override the
 * client address, host, server name, port and scheme the app sees; every
 * other header of the same kinds (all of them, from an untrusted peer) is
 * kept from the app, so a client cannot pass off a forged one. The one
 * place that decides, for both protocols: the WSGI environ (environ.c,
 * in the Apache child, before the variables are relayed to a daemon) and
 * the ASGI scope (asgi.c) each map *pv onto their own keys. */
int pyh_compat_proxy_view(request_rec *r, const pyh_dir_conf *conf,
                          pyh_proxy_view *pv)
{
    const apr_array_header_t *hdrs = conf->trusted_proxy_headers;
    const apr_array_header_t *nets = conf->trusted_proxies;
    int kind_named[PX_KINDS] = {0}, kind_winner[PX_KINDS];
    int trusted, i;
    if (!hdrs || !hdrs->nelts)
        return 0;
    memset(pv, 0, sizeof(*pv));
    trusted = !nets || compat_ip_trusted(r, nets, r->useragent_ip,
                                         r->useragent_addr);
    for (i = 0; i < PX_KINDS; i++)
        kind_winner[i] = -1;
    for (i = 0; i < hdrs->nelts; i++) {
        int h = APR_ARRAY_IDX(hdrs, i, int), kind;
        const char *v;
        kind = compat_proxy_headers[h].kind;
        kind_named[kind] = 1;
        if (!trusted || kind_winner[kind] >= 0
            || !(v = apr_table_get(r->headers_in,
                                   compat_proxy_headers[h].name)))
            continue;
        kind_winner[kind] = h;
        switch (kind) {
        case PX_CLIENT:
            pv->client = h == 0 ? compat_forwarded_for(r, v, nets) : v;
            break;
        case PX_HOST:
            pv->host = v;
            break;
        case PX_SERVER:
            pv->server = v;
            break;
        case PX_PORT:
            pv->port = v;
            break;
        case PX_SCHEME:
            if (compat_proxy_headers[h].flag)
                v = (!strcasecmp(v, "on") || !strcasecmp(v, "true")
                     || !strcmp(v, "1")) ? "https" : "http";
            if (!strcasecmp(v, "https"))
                pv->scheme = "https";
            else if (!strcasecmp(v, "http"))
                pv->scheme = "http";
            break;
        }
    }
    /* Both apps read headers from r->headers_in: a copy without the
     * synonyms that were not applied, and with Host from X-Forwarded-Host. */
    r->headers_in = apr_table_copy(r->pool, r->headers_in);
    for (i = 0; i < COMPAT_NPROXY; i++) {
        int kind = compat_proxy_headers[i].kind;
        if (kind_named[kind] && kind_winner[kind] != i)
            apr_table_unset(r->headers_in, compat_proxy_headers[i].name);
    }
    if (pv->host)
        apr_table_set(r->headers_in, "Host", pv->host);
    compat_server(r, pv);
    return 1;
}

/* ---- script-user= / script-group= ----------------------------------------- */

/* mod_wsgi: a daemon group with script-user (script-group) runs only
 * scripts owned by that user (group), in a directory owned likewise, and
 * neither writable by others: a 403 otherwise, so that one user's files
 * cannot be run in another user's daemon. */
int pyh_compat_check_script_owner(request_rec *r, const pyh_daemon *d,
                                  const char *path)
{
    const char *want = d->script_user ? d->script_user : d->script_group;
    const char *paths[2], *why = NULL;
    int i;
    paths[0] = path;
    paths[1] = ap_make_dirstr_parent(r->pool, path);
    for (i = 0; i < 2 && !why; i++) {
        apr_finfo_t fi;
        const char *owner = NULL;
        if (apr_stat(&fi, paths[i], APR_FINFO_OWNER | APR_FINFO_PROT, r->pool)
            != APR_SUCCESS) {
            why = "cannot be examined";
        }
        else if (d->script_user) {
            struct passwd *pw = getpwuid(fi.user);
            owner = pw ? pw->pw_name : "?";
        }
        else {
            struct group *gr = getgrgid(fi.group);
            owner = gr ? gr->gr_name : "?";
        }
        if (!why && strcmp(owner, want))
            why = apr_psprintf(r->pool, "belongs to %s '%s'",
                               d->script_user ? "user" : "group", owner);
        else if (!why && (fi.protection & APR_FPROT_WWRITE))
            why = "is writable by everyone";
        if (why) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "PYH0130: daemon group '%s' runs only scripts of "
                          "%s '%s' (%s=): '%s' %s",
                          d->name, d->script_user ? "user" : "group", want,
                          d->script_user ? "script-user" : "script-group",
                          paths[i], why);
            return HTTP_FORBIDDEN;
        }
    }
    return OK;
}
