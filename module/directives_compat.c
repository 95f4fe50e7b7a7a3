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

const char *pyh_compat_refuse(cmd_parms *cmd, void *dconf, const char *args)
{
    (void)dconf;
    (void)args;
    return apr_pstrcat(cmd->pool, "PYH0113: ", cmd->cmd->name,
                       " is not supported by pyhost: ",
                       (const char *)cmd->info, NULL);
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

/* Process-wide Python settings (mod_wsgi: main server context only). */
const char *pyh_compat_python_setting(cmd_parms *cmd, void *dconf,
                                         const char *v)
{
    const char *name = cmd->cmd->name, *err;
    char *end;
    (void)dconf;
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

/* Per interpreter, with its GIL, once log.c has pointed stdout at the
 * log: an importable `mod_wsgi` module with what apps and libraries read
 * from mod_wsgi's (process_group, application_group, maximum_processes,
 * threads_per_process, version); WSGIRestrictStdout/Stdin (sys.stdout /
 * sys.stdin become objects whose every attribute raises OSError, as in
 * mod_wsgi, so a print() fails loudly instead of writing to the log); and
 * WSGISwitchInterval. */
int pyh_compat_interp_setup(pyh_interp *in)
{
    static const char code[] =
        "import sys, types\n"
        "m = types.ModuleType('mod_wsgi', 'pyhost in place of mod_wsgi')\n"
        "m.version = (6, 0, 0)\n"
        "m.pyhost_version = _pyhost\n"
        "m.process_group = _pg\n"
        "m.application_group = _ag\n"
        "m.maximum_processes = _procs\n"
        "m.threads_per_process = _threads\n"
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
        "    sys.setswitchinterval(_si)\n";
    PyObject *globals, *res;
    int procs = 1, threads = 1;
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
    if (!(globals = Py_BuildValue(
              "{s:O,s:s,s:s,s:s,s:i,s:i,s:i,s:i,s:d}", "__builtins__",
              PyEval_GetBuiltins(), "_pyhost", PYH_VERSION, "_pg",
              pyh_this_daemon ? pyh_this_daemon->name : "", "_ag",
              in->name ? in->name : "", "_procs", procs, "_threads", threads,
              "_out", pyh_compat.restrict_stdout, "_in",
              pyh_compat.restrict_stdin, "_si", pyh_compat.switch_interval)))
        return -1;
    res = PyRun_String(code, Py_file_input, globals, globals);
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
    {"chroot", "pyhost does not chroot its daemons"},
    {"python-eggs", "Python eggs are obsolete"},
    {"switch-interval", "use WSGISwitchInterval"},
    {"stack-size", "threads keep the system's default stack size"},
    {"deadlock-timeout", "no deadlock watchdog"},
    {"interrupt-timeout", "requests are not interrupted"},
    {"eviction-timeout", "graceful-timeout applies on eviction"},
    {"send-buffer-size", "the system's socket buffer sizes apply"},
    {"receive-buffer-size", "the system's socket buffer sizes apply"},
    {"header-buffer-size", "headers are sized as they come"},
    {"response-buffer-size", "responses stream without a fixed buffer"},
    {"response-socket-timeout", "socket-timeout applies"},
    {"response-flush-delay", "responses are flushed as written"},
    {"socket-user", "sockets are owned by Apache's User"},
    {"script-user", "script ownership is not checked"},
    {"script-group", "script ownership is not checked"},
    {"cpu-time-limit", "no CPU time limit"},
    {"cpu-priority", "daemons keep Apache's priority"},
    {"virtual-memory-limit", "no address space limit (memory-limit applies)"},
    {"server-metrics", "see pyhost's own metrics"},
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
