/* config.c - directive handlers (mod_wsgi's names and meanings), creation
 * and field-by-field merging of server and directory configuration, and the
 * startup checks that turn a misconfigured Python home into one line. */
#include "pyhost.h"
#include "metrics.h"

#include "http_core.h"
#include "unixd.h"
#include "apr_strings.h"
#include "apr_file_info.h"
#include "apr_file_io.h"

#include <errno.h>
#include <limits.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>

pyh_globals_t pyh_globals;

void pyh_reset_globals(apr_pool_t *p)
{
    pyh_globals.python_home = NULL;
    pyh_globals.python_path = apr_array_make(p, 2, sizeof(const char *));
    pyh_globals.imports = apr_array_make(p, 2, sizeof(pyh_import));
    pyh_globals.restrict_embedded = 0;
    pyh_globals.daemons = apr_array_make(p, 2, sizeof(pyh_daemon *));
    pyh_globals.daemons_by_name = apr_hash_make(p);
    pyh_globals.socket_prefix = NULL;
    pyh_globals.per_interpreter_gil = 0;
    pyh_globals.free_threading = 0;
    pyh_globals.asgi_event_loop = PYH_LOOP_AUTO;
}

/* ---- create / merge ------------------------------------------------------ */

static void cfg_init_options(pyh_dir_conf *c)
{
    c->application_group = NULL;
    c->callable_object = NULL;
    c->process_group = NULL;
    c->pass_authorization = PYH_UNSET;
    c->chunked_request = PYH_UNSET;
    c->script_reloading = PYH_UNSET;
    c->map_head_to_get = PYH_UNSET;
    c->error_override = PYH_UNSET;
    c->auth_user_script = c->auth_group_script = c->access_script = NULL;
    c->group_authoritative = PYH_UNSET;
    c->trusted_proxy_headers = c->trusted_proxies = NULL;
    c->dispatch_script = NULL;
    c->handler_scripts = NULL;
    c->restrict_process = NULL;
    c->pass_apache_request = PYH_UNSET;
    c->ignore_activity = PYH_UNSET;
}

void *pyh_create_dir_conf(apr_pool_t *p, char *dir)
{
    pyh_dir_conf *c = apr_palloc(p, sizeof(*c));
    (void)dir;
    cfg_init_options(c);
    return c;
}

#define CFG_MERGE_PTR(f) out->f = over->f ? over->f : base->f
#define CFG_MERGE_INT(f) \
    out->f = over->f != PYH_UNSET ? over->f : base->f

void pyh_overlay_options(pyh_dir_conf *out, const pyh_dir_conf *base,
                         const pyh_dir_conf *over)
{
    CFG_MERGE_PTR(application_group);
    CFG_MERGE_PTR(callable_object);
    CFG_MERGE_PTR(process_group);
    CFG_MERGE_INT(pass_authorization);
    CFG_MERGE_INT(chunked_request);
    CFG_MERGE_INT(script_reloading);
    CFG_MERGE_INT(map_head_to_get);
    CFG_MERGE_INT(error_override);
    CFG_MERGE_PTR(auth_user_script);
    CFG_MERGE_PTR(auth_group_script);
    CFG_MERGE_PTR(access_script);
    CFG_MERGE_INT(group_authoritative);
    CFG_MERGE_PTR(trusted_proxy_headers);
    CFG_MERGE_PTR(trusted_proxies);
    CFG_MERGE_PTR(dispatch_script);
    CFG_MERGE_PTR(handler_scripts);
    CFG_MERGE_PTR(restrict_process);
    CFG_MERGE_INT(pass_apache_request);
    CFG_MERGE_INT(ignore_activity);
}

void *pyh_merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    pyh_dir_conf *c = apr_palloc(p, sizeof(*c));
    const pyh_dir_conf *base = basev, *add = addv;
    pyh_overlay_options(c, basev, addv);
    /* WSGIHandlerScript names add up; an inner one of the same name wins */
    if (base->handler_scripts && add->handler_scripts)
        c->handler_scripts = apr_hash_overlay(p, add->handler_scripts,
                                              base->handler_scripts);
    return c;
}

void *pyh_create_server_conf(apr_pool_t *p, server_rec *s)
{
    pyh_server_conf *c = apr_palloc(p, sizeof(*c));
    (void)s;
    c->aliases = apr_array_make(p, 4, sizeof(pyh_alias));
    c->asgi_lifespan = PYH_UNSET;
    c->ws_max_message = PYH_UNSET;
    c->ws_compression = PYH_UNSET;
    c->ws_ping_interval = PYH_UNSET;
    c->ws_ping_timeout = PYH_UNSET;
    return c;
}

void *pyh_merge_server_conf(apr_pool_t *p, void *basev, void *addv)
{
    pyh_server_conf *base = basev, *add = addv;
    pyh_server_conf *c = apr_palloc(p, sizeof(*c));
    /* A virtual host's own aliases are tried before the main server's. */
    c->aliases = apr_array_append(p, add->aliases, base->aliases);
    c->asgi_lifespan = add->asgi_lifespan != PYH_UNSET ? add->asgi_lifespan
                                                       : base->asgi_lifespan;
#define CFG_MERGE(f) c->f = add->f != PYH_UNSET ? add->f : base->f
    CFG_MERGE(ws_max_message);
    CFG_MERGE(ws_compression);
    CFG_MERGE(ws_ping_interval);
    CFG_MERGE(ws_ping_timeout);
#undef CFG_MERGE
    return c;
}

/* ---- directive handlers --------------------------------------------------- */

static const char *cfg_on_off(cmd_parms *cmd, const char *opt,
                              const char *value, int *out)
{
    if (!strcasecmp(value, "On"))
        *out = 1;
    else if (!strcasecmp(value, "Off"))
        *out = 0;
    else
        return apr_psprintf(cmd->pool, "%s: %s= takes On or Off, not '%s'",
                            cmd->cmd->name, opt, value);
    return NULL;
}

/* A process group is %{GLOBAL} (embedded), %{ENV:variable} or the name
 * of a WSGIDaemonProcess, which may come later in the file: names are
 * checked in post_config (pyh_check_process_groups). */
static const char *cfg_check_process_group(cmd_parms *cmd, const char *v)
{
    if (v[0] == '%' && strcmp(v, "%{GLOBAL}")
        && (strncmp(v, "%{ENV:", 6) || v[strlen(v) - 1] != '}'))
        return apr_psprintf(cmd->pool,
                            "%s: process group '%s': only %%{GLOBAL}, "
                            "%%{ENV:variable} or a WSGIDaemonProcess name",
                            cmd->cmd->name, v);
    return NULL;
}

/* Parses name=value options shared by WSGIScriptAlias(Match) and
 * WSGIImportScript into `opts`; any other option is an error naming it. */
static const char *cfg_parse_options(cmd_parms *cmd, const char *args,
                                     pyh_dir_conf *opts, int import_only)
{
    for (;;) {
        const char *name, *value = NULL, *err;
        const char *word;
        int got = pyh_compat_parse_option(cmd->pool, &args, &name, &value);
        if (!got)
            break;
        if (got < 0)
            return apr_psprintf(cmd->pool,
                                "%s: option '%s' is not of the form name=value",
                                cmd->cmd->name, name);
        word = apr_pstrcat(cmd->pool, name, "=", value, NULL);
        if (!strcmp(name, "application-group")) {
            opts->application_group = value;
        }
        else if (!strcmp(name, "process-group")) {
            if ((err = cfg_check_process_group(cmd, value)))
                return err;
            opts->process_group = value;
        }
        else if (!import_only && !strcmp(name, "callable-object")) {
            opts->callable_object = value;
        }
        else if (!import_only && !strcmp(name, "pass-authorization")) {
            if ((err = cfg_on_off(cmd, name, value, &opts->pass_authorization)))
                return err;
        }
        else {
            return apr_psprintf(cmd->pool,
                                "%s: unknown option '%s' (known: %s)",
                                cmd->cmd->name, word,
                                import_only
                                    ? "application-group=, process-group="
                                    : "application-group=, callable-object=, "
                                      "pass-authorization=, process-group=");
        }
    }
    return NULL;
}

/* cmd->info of the four script-alias directives */
typedef struct {
    int is_match;
    int protocol;
} cfg_alias_kind;

static const cfg_alias_kind cfg_wsgi_match = {1, PYH_PROTO_WSGI};
static const cfg_alias_kind cfg_asgi_alias = {0, PYH_PROTO_ASGI};
static const cfg_alias_kind cfg_asgi_match = {1, PYH_PROTO_ASGI};

static const char *cfg_asgi_options(cmd_parms *cmd, pyh_alias *a,
                                    const char **args);

static const char *cfg_script_alias(cmd_parms *cmd, void *dconf,
                                    const char *args)
{
    pyh_server_conf *sconf =
        ap_get_module_config(cmd->server->module_config, &pyhost_module);
    const cfg_alias_kind *kind = cmd->info;
    int is_match = kind && kind->is_match;
    pyh_alias *a;
    const char *err;
    (void)dconf;

    a = apr_array_push(sconf->aliases);
    memset(a, 0, sizeof(*a));
    cfg_init_options(&a->options);
    a->protocol = kind ? kind->protocol : PYH_PROTO_WSGI;
    a->lifespan = PYH_UNSET;
    a->location = ap_getword_conf(cmd->pool, &args);
    a->script = ap_getword_conf(cmd->pool, &args);
    if (!*a->location || !*a->script)
        return apr_psprintf(cmd->pool, "%s needs a URL %s and a script path",
                            cmd->cmd->name, is_match ? "pattern" : "path");
    if (is_match) {
        a->regexp = ap_pregcomp(cmd->pool, a->location, AP_REG_EXTENDED);
        if (!a->regexp)
            return apr_psprintf(cmd->pool, "%s: invalid regular expression '%s'",
                                cmd->cmd->name, a->location);
    }
    else {
        a->script = ap_server_root_relative(cmd->pool, a->script);
        if (!a->script)
            return apr_psprintf(cmd->pool, "%s: invalid script path",
                                cmd->cmd->name);
        a->is_dir = ap_is_directory(cmd->temp_pool, a->script);
    }
    if (a->protocol == PYH_PROTO_ASGI && (err = cfg_asgi_options(cmd, a, &args)))
        return err;
    if ((err = cfg_parse_options(cmd, args, &a->options, 0)))
        return err;
    return NULL;
}

/* ---- ASGI ------------------------------------------------------------------ */

static const char *cfg_lifespan_value(cmd_parms *cmd, const char *v, int *out)
{
    if (!strcasecmp(v, "auto"))
        *out = PYH_LIFESPAN_AUTO;
    else if (!strcasecmp(v, "on"))
        *out = PYH_LIFESPAN_ON;
    else if (!strcasecmp(v, "off"))
        *out = PYH_LIFESPAN_OFF;
    else
        return apr_psprintf(cmd->pool,
                            "%s: lifespan takes auto, on or off, not '%s'",
                            cmd->cmd->name, v);
    return NULL;
}

/* Takes ASGIScriptAlias's own options (lifespan=) out of *args, leaving
 * the ones it shares with WSGIScriptAlias for cfg_parse_options. */
static const char *cfg_asgi_options(cmd_parms *cmd, pyh_alias *a,
                                    const char **args)
{
    const char *rest = "", *err;
    while (**args) {
        const char *word = ap_getword_conf(cmd->pool, args);
        if (!*word)
            break;
        if (!strncmp(word, "lifespan=", 9)) {
            if ((err = cfg_lifespan_value(cmd, word + 9, &a->lifespan)))
                return err;
        }
        else if (!strncmp(word, "pass-authorization=", 19)) {
            return apr_psprintf(cmd->pool,
                                "%s: pass-authorization= is WSGI's; an ASGI "
                                "app sees the Authorization header anyway",
                                cmd->cmd->name);
        }
        else {
            /* quoted again: ap_getword_conf took the quotes off */
            rest = apr_pstrcat(cmd->pool, rest, " \"",
                               ap_escape_quotes(cmd->pool, word), "\"", NULL);
        }
    }
    *args = rest;
    return NULL;
}

static const char *cfg_asgi_lifespan(cmd_parms *cmd, void *dconf, const char *v)
{
    pyh_server_conf *sconf =
        ap_get_module_config(cmd->server->module_config, &pyhost_module);
    (void)dconf;
    return cfg_lifespan_value(cmd, v, &sconf->asgi_lifespan);
}

/* ASGIWebSocketMaxMessage / PingInterval / PingTimeout: a whole number,
 * within the row's bounds (cmd->info: which one). PingInterval 0 means no
 * pings; a PingTimeout of 0 would close every connection at its first
 * ping, so it starts at 1. */
static const char *cfg_ws_number(cmd_parms *cmd, void *dconf, const char *v)
{
    pyh_server_conf *sconf =
        ap_get_module_config(cmd->server->module_config, &pyhost_module);
    int field = (int)(apr_uintptr_t)cmd->info;
    char *end;
    long n;
    (void)dconf;
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < (field == 1 ? 0 : 1)
        || n > (field == 0 ? 1073741824L : 86400L))
        return apr_psprintf(cmd->pool, "%s takes a whole number %s, not '%s'",
                            cmd->cmd->name,
                            field == 0   ? "of bytes, 1 to 1073741824"
                            : field == 1 ? "of seconds, 0 to 86400"
                                         : "of seconds, 1 to 86400",
                            v);
    if (field == 0)
        sconf->ws_max_message = n;
    else if (field == 1)
        sconf->ws_ping_interval = (int)n;
    else
        sconf->ws_ping_timeout = (int)n;
    return NULL;
}

static const char *cfg_ws_compression(cmd_parms *cmd, void *dconf, int on)
{
    pyh_server_conf *sconf =
        ap_get_module_config(cmd->server->module_config, &pyhost_module);
    (void)dconf;
    sconf->ws_compression = on;
    return NULL;
}

static const char *cfg_asgi_event_loop(cmd_parms *cmd, void *dconf,
                                       const char *v)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    (void)dconf;
    if (err)
        return err;
    if (!strcasecmp(v, "auto"))
        pyh_globals.asgi_event_loop = PYH_LOOP_AUTO;
    else if (!strcasecmp(v, "asyncio"))
        pyh_globals.asgi_event_loop = PYH_LOOP_ASYNCIO;
    else if (!strcasecmp(v, "uvloop"))
        pyh_globals.asgi_event_loop = PYH_LOOP_UVLOOP;
    else
        return apr_psprintf(cmd->pool,
                            "ASGIEventLoop takes auto, asyncio or uvloop, not "
                            "'%s'",
                            v);
    return NULL;
}

static const char *cfg_set_string(cmd_parms *cmd, void *dconf, const char *v)
{
    pyh_dir_conf *c = dconf;
    const char *name = cmd->cmd->name;
    if (!strcasecmp(name, "WSGIApplicationGroup"))
        c->application_group = v;
    else if (!strcasecmp(name, "WSGICallableObject"))
        c->callable_object = v;
    return NULL;
}

static const char *cfg_set_flag(cmd_parms *cmd, void *dconf, int on)
{
    pyh_dir_conf *c = dconf;
    *(int *)((char *)c + (apr_size_t)cmd->info) = on;
    return NULL;
}

static const char *cfg_map_head(cmd_parms *cmd, void *dconf, const char *v)
{
    pyh_dir_conf *c = dconf;
    if (!strcasecmp(v, "On"))
        c->map_head_to_get = PYH_HEAD_ON;
    else if (!strcasecmp(v, "Off"))
        c->map_head_to_get = PYH_HEAD_OFF;
    else if (!strcasecmp(v, "Auto"))
        c->map_head_to_get = PYH_HEAD_AUTO;
    else
        return apr_psprintf(cmd->pool,
                            "WSGIMapHEADToGET takes On, Off or Auto, not '%s'", v);
    return NULL;
}

static const char *cfg_python_home(cmd_parms *cmd, void *dconf, const char *v)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    (void)dconf;
    if (err)
        return err;
    pyh_globals.python_home = ap_server_root_relative(cmd->pool, v);
    return NULL;
}

static const char *cfg_python_path(cmd_parms *cmd, void *dconf, const char *v)
{
    const char *err;
    char *paths, *dir, *state;
    (void)dconf;
    if (pyh_compat_in_block(cmd))
        return pyh_compat_block_set(cmd, v);
    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY)))
        return err;
    paths = apr_pstrdup(cmd->pool, v);
    for (dir = apr_strtok(paths, ":", &state); dir;
         dir = apr_strtok(NULL, ":", &state))
        *(const char **)apr_array_push(pyh_globals.python_path) = dir;
    return NULL;
}

static const char *cfg_import_script(cmd_parms *cmd, void *dconf,
                                     const char *args)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_LOCATION | NOT_IN_FILES
                                                    | NOT_IN_DIRECTORY);
    pyh_dir_conf opts;
    pyh_import *imp;
    const char *script;
    (void)dconf;
    if (err)
        return err;
    script = ap_getword_conf(cmd->pool, &args);
    if (!*script)
        return "WSGIImportScript needs a script path";
    cfg_init_options(&opts);
    if ((err = cfg_parse_options(cmd, args, &opts, 1)))
        return err;
    if (!opts.application_group)
        return "WSGIImportScript needs application-group= (use %{GLOBAL} "
               "for the main interpreter)";
    imp = apr_array_push(pyh_globals.imports);
    imp->script = ap_server_root_relative(cmd->pool, script);
    imp->process_group = opts.process_group ? opts.process_group : "";
    imp->application_group = opts.application_group;
    return NULL;
}

static const char *cfg_restrict_embedded(cmd_parms *cmd, void *dconf, int on)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    (void)dconf;
    if (err)
        return err;
    pyh_globals.restrict_embedded = on;
    return NULL;
}

static const char *cfg_process_group(cmd_parms *cmd, void *dconf, const char *v)
{
    pyh_dir_conf *c = dconf;
    const char *err = cfg_check_process_group(cmd, v);
    if (err)
        return err;
    c->process_group = v;
    return NULL;
}

/* ---- WSGIDaemonProcess ------------------------------------------------------ */

static const char *cfg_int_opt(cmd_parms *cmd, const char *name,
                               const char *value, apr_int64_t min,
                               apr_int64_t *out)
{
    char *end;
    apr_int64_t v;
    errno = 0;
    v = apr_strtoi64(value, &end, 10);
    if (!*value || *end || errno == ERANGE || v < min)
        return apr_psprintf(cmd->pool,
                            "WSGIDaemonProcess: %s=%s is not a whole number "
                            ">= %" APR_INT64_T_FMT,
                            name, value, min);
    *out = v;
    return NULL;
}

/* Seconds (whole or decimal, like mod_wsgi) as an interval. */
static const char *cfg_secs_opt(cmd_parms *cmd, const char *name,
                                const char *value, apr_interval_time_t *out)
{
    char *end;
    double v;
    errno = 0;
    v = strtod(value, &end);
    if (!*value || *end || (errno && errno != ERANGE) || v < 0)
        return apr_psprintf(cmd->pool,
                            "WSGIDaemonProcess: %s=%s is not a number of "
                            "seconds",
                            name, value);
    /* mod_wsgi takes any int (socket-timeout=2147483647 means "never"):
     * a year is never enough, and stays far from overflow. */
    if ((errno == ERANGE && v > 1) || v > 31536000.0)
        v = 31536000.0;
    *out = (apr_interval_time_t)(v * APR_USEC_PER_SEC);
    return NULL;
}

static const char *cfg_daemon_user(cmd_parms *cmd, pyh_daemon *d)
{
    struct passwd *pw;
    struct group *gr;
    char *end;
    if (d->user) {
        if (d->user[0] == '#') {
            d->uid = (uid_t)strtoul(d->user + 1, &end, 10);
            if (*end || !(pw = getpwuid(d->uid)))
                return apr_psprintf(cmd->pool, "WSGIDaemonProcess %s: no "
                                    "user with id %s", d->name, d->user + 1);
        }
        else if (!(pw = getpwnam(d->user))) {
            return apr_psprintf(cmd->pool,
                                "WSGIDaemonProcess %s: no such user '%s'",
                                d->name, d->user);
        }
        d->user = apr_pstrdup(cmd->pool, pw->pw_name);
        d->user_given = 1;
        d->uid = pw->pw_uid;
        if (!d->group)
            d->gid = pw->pw_gid;
        if (!d->home)
            d->home = apr_pstrdup(cmd->pool, pw->pw_dir);
    }
    /* Without user=, Apache's User: pyh_daemon_resolve_users, once the
     * whole configuration is read (User may well come later). */
    if (d->group) {
        if (d->group[0] == '#')
            d->gid = (gid_t)strtoul(d->group + 1, &end, 10);
        else if ((gr = getgrnam(d->group)))
            d->gid = gr->gr_gid;
        else
            return apr_psprintf(cmd->pool,
                                "WSGIDaemonProcess %s: no such group '%s'",
                                d->name, d->group);
    }
    return NULL;
}

static const char *cfg_daemon_groups(cmd_parms *cmd, pyh_daemon *d,
                                     const char *value)
{
    char *list = apr_pstrdup(cmd->pool, value), *g, *state;
    d->groups = apr_array_make(cmd->pool, 4, sizeof(gid_t));
    for (g = apr_strtok(list, ",", &state); g; g = apr_strtok(NULL, ",", &state)) {
        struct group *gr = getgrnam(g);
        if (!gr)
            return apr_psprintf(cmd->pool,
                                "WSGIDaemonProcess %s: supplementary-groups: "
                                "no such group '%s'",
                                d->name, g);
        *(gid_t *)apr_array_push(d->groups) = gr->gr_gid;
    }
    return NULL;
}

/* One name=value option of WSGIDaemonProcess. */
static const char *cfg_daemon_option(cmd_parms *cmd, pyh_daemon *d,
                                     const char *name, const char *value)
{
    static const struct {
        const char *name;
        apr_size_t offset;
    } secs[] = {
        {"restart-interval", APR_OFFSETOF(pyh_daemon, restart_interval)},
        {"inactivity-timeout", APR_OFFSETOF(pyh_daemon, inactivity_timeout)},
        {"request-timeout", APR_OFFSETOF(pyh_daemon, request_timeout)},
        {"graceful-timeout", APR_OFFSETOF(pyh_daemon, graceful_timeout)},
        {"shutdown-timeout", APR_OFFSETOF(pyh_daemon, shutdown_timeout)},
        {"startup-timeout", APR_OFFSETOF(pyh_daemon, startup_timeout)},
        {"connect-timeout", APR_OFFSETOF(pyh_daemon, connect_timeout)},
        {"socket-timeout", APR_OFFSETOF(pyh_daemon, socket_timeout)},
        {"queue-timeout", APR_OFFSETOF(pyh_daemon, queue_timeout)},
    };
    apr_int64_t n = 0;
    const char *err;
    apr_size_t i;

    for (i = 0; i < sizeof(secs) / sizeof(secs[0]); i++)
        if (!strcmp(name, secs[i].name))
            return cfg_secs_opt(cmd, name, value,
                                (apr_interval_time_t *)((char *)d
                                                        + secs[i].offset));
    if (!strcmp(name, "processes") || !strcmp(name, "threads")
        || !strcmp(name, "listen-backlog")) {
        if ((err = cfg_int_opt(cmd, name, value, 1, &n)))
            return err;
        if (n > 10000)
            return apr_psprintf(cmd->pool, "WSGIDaemonProcess: %s=%s is too "
                                "large", name, value);
        if (name[0] == 'p')
            d->processes = (int)n;
        else if (name[0] == 't')
            d->threads = (int)n;
        else
            d->listen_backlog = (int)n;
    }
    else if (!strcmp(name, "maximum-requests")) {
        return cfg_int_opt(cmd, name, value, 0, &d->maximum_requests);
    }
    else if (!strcmp(name, "memory-limit")) {
        return cfg_int_opt(cmd, name, value, 0, &d->memory_limit);
    }
    else if (!strcmp(name, "umask")) {
        char *end;
        long m = strtol(value, &end, 8);
        if (!*value || *end || m < 0 || m > 0777)
            return apr_psprintf(cmd->pool, "WSGIDaemonProcess: umask=%s is "
                                "not an octal mode", value);
        d->umask = (int)m;
    }
    else if (!strcmp(name, "user")) {
        d->user = value;
    }
    else if (!strcmp(name, "group")) {
        d->group = value;
    }
    else if (!strcmp(name, "supplementary-groups")) {
        return cfg_daemon_groups(cmd, d, value);
    }
    else if (!strcmp(name, "home")) {
        d->home = ap_server_root_relative(cmd->pool, value);
        d->home_given = 1;
    }
    else if (!strcmp(name, "python-home")) {
        d->python_home = ap_server_root_relative(cmd->pool, value);
    }
    else if (!strcmp(name, "python-path")) {
        char *paths = apr_pstrdup(cmd->pool, value), *dir, *state;
        for (dir = apr_strtok(paths, ":", &state); dir;
             dir = apr_strtok(NULL, ":", &state))
            *(const char **)apr_array_push(d->python_path) = dir;
    }
    else if (!strcmp(name, "display-name")) {
        d->display_name = !strcmp(value, "%{GROUP}")
                              ? apr_psprintf(cmd->pool, "(wsgi:%s)", d->name)
                              : value;
    }
    else if (!strcmp(name, "lang")) {
        d->lang = value;
    }
    else if (!strcmp(name, "locale")) {
        d->locale = value;
    }
    else if (!strcmp(name, "cpu-time-limit")
             || !strcmp(name, "send-buffer-size")
             || !strcmp(name, "receive-buffer-size")
             || !strcmp(name, "stack-size")) {
        /* mod_wsgi's bounds: buffer sizes >= 512 (0: the system's) */
        if ((err = cfg_int_opt(cmd, name, value, name[0] == 's' && name[1] == 't'
                                                     ? 1 : 0, &n)))
            return err;
        if (n > INT_MAX)
            return apr_psprintf(cmd->pool, "WSGIDaemonProcess: %s=%s is too "
                                "large", name, value);
        if (strstr(name, "buffer") && n && n < 512)
            return apr_psprintf(cmd->pool, "WSGIDaemonProcess: %s=%s: a "
                                "buffer size must be >= 512 bytes, or 0 for "
                                "the system's default", name, value);
        if (name[0] == 'c')
            d->cpu_time_limit = (int)n;
        else if (name[0] == 'r')
            d->recv_buffer_size = (int)n;
        else if (name[1] == 'e')
            d->send_buffer_size = (int)n;
        else
            d->stack_size = (apr_size_t)n;
    }
    else if (!strcmp(name, "cpu-priority")) {
        char *end;
        long v = strtol(value, &end, 10);
        if (!*value || *end || v < -20 || v > 19)
            return apr_psprintf(cmd->pool, "WSGIDaemonProcess: cpu-priority=%s "
                                "is not a nice value from -20 to 19", value);
        d->cpu_priority = (int)v;
    }
    else if (!strcmp(name, "virtual-memory-limit")) {
        return cfg_int_opt(cmd, name, value, 0, &d->virtual_memory_limit);
    }
    else if (!strcmp(name, "script-user") || !strcmp(name, "script-group")) {
        /* mod_wsgi: only one of them; names, or #id */
        if (value[0] == '#') {
            char *end;
            unsigned long id = strtoul(value + 1, &end, 10);
            struct passwd *pw = name[7] == 'u' ? getpwuid((uid_t)id) : NULL;
            struct group *gr = name[7] == 'g' ? getgrgid((gid_t)id) : NULL;
            if (!pw && !gr)
                return apr_psprintf(cmd->pool, "WSGIDaemonProcess %s: %s: "
                                    "no such id '%s'", d->name, name, value);
            value = pw ? apr_pstrdup(cmd->pool, pw->pw_name)
                       : apr_pstrdup(cmd->pool, gr->gr_name);
        }
        if (name[7] == 'u')
            d->script_user = value;
        else
            d->script_group = value;
        if (d->script_user && d->script_group)
            return "WSGIDaemonProcess: only one of script-user and "
                   "script-group is allowed";
    }
    else if (!strcmp(name, "chroot")) {
        if (value[0] != '/')
            return apr_psprintf(cmd->pool, "WSGIDaemonProcess %s: chroot=%s "
                                "is not an absolute path", d->name, value);
        d->chroot = value;
    }
    else if (!strcmp(name, "switch-interval")) {
        char *end;
        d->switch_interval = strtod(value, &end);
        if (!*value || *end || !(d->switch_interval > 0))
            return apr_psprintf(cmd->pool, "WSGIDaemonProcess: "
                                "switch-interval=%s is not a number of "
                                "seconds > 0", value);
    }
    else if (!strcmp(name, "server-metrics")) {
        if (strcasecmp(value, "On") && strcasecmp(value, "Off"))
            return apr_psprintf(cmd->pool, "WSGIDaemonProcess: server-metrics"
                                "=%s: On or Off", value);
        d->server_metrics = !strcasecmp(value, "On");
    }
    else if (!strcmp(name, "socket-user")) {
        struct passwd *pw;
        char *end;
        if (value[0] == '#')
            pw = getpwuid((uid_t)strtoul(value + 1, &end, 10));
        else
            pw = getpwnam(value);
        if (!pw)
            return apr_psprintf(cmd->pool, "WSGIDaemonProcess %s: "
                                "socket-user: no such user '%s'",
                                d->name, value);
        d->socket_user = apr_pstrdup(cmd->pool, pw->pw_name);
        d->socket_uid = pw->pw_uid;
    }
    else if (!pyh_compat_daemon_option(cmd, d->name, name, value)) {
        return apr_psprintf(
            cmd->pool,
            "WSGIDaemonProcess %s: unknown option '%s' (known: processes, "
            "threads, user, group, supplementary-groups, umask, home, "
            "python-home, python-path, display-name, lang, locale, "
            "maximum-requests, restart-interval, inactivity-timeout, "
            "request-timeout, graceful-timeout, shutdown-timeout, "
            "startup-timeout, connect-timeout, socket-timeout, queue-timeout, "
            "listen-backlog, memory-limit, cpu-time-limit, cpu-priority, "
            "virtual-memory-limit, stack-size, send-buffer-size, "
            "receive-buffer-size, socket-user)",
            d->name, name);
    }
    return NULL;
}

static const char *cfg_daemon_process(cmd_parms *cmd, void *dconf,
                                      const char *args)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    pyh_daemon *d;
    (void)dconf;
    if (err)
        return err;
    d = apr_pcalloc(cmd->pool, sizeof(*d));
    d->name = ap_getword_conf(cmd->pool, &args);
    if (!*d->name || d->name[0] == '%')
        return "WSGIDaemonProcess needs a group name (not starting with %)";
    if (apr_hash_get(pyh_globals.daemons_by_name, d->name, APR_HASH_KEY_STRING))
        return apr_psprintf(cmd->pool,
                            "WSGIDaemonProcess %s: a group of that name is "
                            "already defined",
                            d->name);
    d->server = cmd->server;
    d->processes = 1;
    d->threads = 15;
    d->umask = -1;
    d->listen_backlog = 100;
    d->python_path = apr_array_make(cmd->pool, 2, sizeof(const char *));
    d->graceful_timeout = apr_time_from_sec(15);
    d->shutdown_timeout = apr_time_from_sec(5);
    d->connect_timeout = apr_time_from_sec(15);
    d->listen_fd = -1;
    for (;;) {
        const char *name, *value = NULL;
        int got = pyh_compat_parse_option(cmd->pool, &args, &name, &value);
        if (!got)
            break;
        if (got < 0)
            return apr_psprintf(cmd->pool,
                                "WSGIDaemonProcess %s: option '%s' is not of "
                                "the form name=value",
                                d->name, name);
        if ((err = cfg_daemon_option(cmd, d, name, value)))
            return err;
    }
    if ((err = cfg_daemon_user(cmd, d)))
        return err;
    if (d->user_given && d->uid == 0)
        return apr_psprintf(cmd->pool,
                            "WSGIDaemonProcess: refusing to run daemon group "
                            "'%s' as root; set user= to an unprivileged user",
                            d->name);
    d->index = pyh_globals.daemons->nelts;
    *(pyh_daemon **)apr_array_push(pyh_globals.daemons) = d;
    apr_hash_set(pyh_globals.daemons_by_name, d->name, APR_HASH_KEY_STRING, d);
    return NULL;
}

const char *pyh_daemon_resolve_users(apr_pool_t *p)
{
    int i;
    for (i = 0; i < pyh_globals.daemons->nelts; i++) {
        pyh_daemon *d = APR_ARRAY_IDX(pyh_globals.daemons, i, pyh_daemon *);
        struct passwd *pw;
        if (d->user_given)
            continue;
        /* Apache's children keep their identity when Apache does not run
         * as root; so do the daemons. */
        d->uid = geteuid() == 0 ? ap_unixd_config.user_id : geteuid();
        if (!d->group)
            d->gid = geteuid() == 0 ? ap_unixd_config.group_id : getegid();
        if ((pw = getpwuid(d->uid))) {
            d->user = apr_pstrdup(p, pw->pw_name);
            if (!d->home)
                d->home = apr_pstrdup(p, pw->pw_dir);
        }
        else {
            d->user = apr_psprintf(p, "#%ld", (long)d->uid);
        }
        if (d->uid == 0)
            return apr_psprintf(p,
                                "PYH0059: WSGIDaemonProcess %s has no user= "
                                "and would run as root (Apache's User); set "
                                "user= to an unprivileged user",
                                d->name);
    }
    return NULL;
}

static const char *cfg_socket_prefix(cmd_parms *cmd, void *dconf, const char *v)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    (void)dconf;
    if (err)
        return err;
    /* Relative to ServerRoot, as in mod_wsgi (RHEL's "run/wsgi"). */
    pyh_globals.socket_prefix = ap_server_root_relative(cmd->pool, v);
    return NULL;
}

pyh_daemon *pyh_daemon_lookup(request_rec *r, const char *spec,
                              const char **missing)
{
    pyh_daemon *d;
    *missing = NULL;
    if (!spec || !*spec || !strcmp(spec, "%{GLOBAL}"))
        return NULL;
    if (!strncmp(spec, "%{ENV:", 6)) {
        const char *var = apr_pstrmemdup(r->pool, spec + 6, strlen(spec) - 7);
        spec = apr_table_get(r->subprocess_env, var);
        if (!spec || !*spec || !strcmp(spec, "%{GLOBAL}"))
            return NULL;
    }
    d = apr_hash_get(pyh_globals.daemons_by_name, spec, APR_HASH_KEY_STRING);
    if (!d)
        *missing = spec;
    return d;
}

/* WSGIPerInterpreterGIL and WSGIFreeThreading: process-wide (mod_wsgi 6's
 * top-level scope); On is refused at startup by a Python that cannot. */
static const char *cfg_gil_mode(cmd_parms *cmd, void *dconf, int on)
{
    const char *err;
    (void)dconf;
    if (pyh_compat_in_block(cmd))
        return pyh_compat_block_set(cmd, on ? "On" : "Off");
    err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (err)
        return err;
    if (cmd->info) {
        if (on && !PYH_FREE_THREADED)
            return "PYH0061: WSGIFreeThreading On needs a free-threaded "
                   "Python (3.13t or newer, built with --disable-gil); this "
                   "mod_pyhost is built for Python " PYH_PY_VERSION_STR " "
                   PYH_BUILD_DESC;
        pyh_globals.free_threading = on;
    }
    else {
        if (on && !PYH_HAVE_OWN_GIL)
            return "PYH0060: WSGIPerInterpreterGIL On needs Python 3.12 or "
                   "newer (PEP 684); this mod_pyhost is built for Python "
                   PYH_PY_VERSION_STR;
        pyh_globals.per_interpreter_gil = on;
    }
    return NULL;
}

#define DIR_FLAG(name, field, help)                                    \
    AP_INIT_FLAG(name, cfg_set_flag,                                   \
                 (void *)APR_OFFSETOF(pyh_dir_conf, field),            \
                 RSRC_CONF | ACCESS_CONF, help)

const command_rec pyh_commands[] = {
    AP_INIT_RAW_ARGS("WSGIScriptAlias", cfg_script_alias, NULL, RSRC_CONF,
                     "URL-path script-path [application-group=G] "
                     "[callable-object=NAME] [pass-authorization=On|Off]: "
                     "serve the WSGI script at URL-path"),
    AP_INIT_RAW_ARGS("WSGIScriptAliasMatch", cfg_script_alias,
                     (void *)&cfg_wsgi_match,
                     RSRC_CONF,
                     "regex script-path [options]: like WSGIScriptAlias; "
                     "$1.. in script-path take the regex's groups"),
    AP_INIT_TAKE1("WSGIApplicationGroup", cfg_set_string, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "%{GLOBAL} (main interpreter, the default), %{SERVER}, "
                  "%{RESOURCE}, %{ENV:variable} or a name (a sub-interpreter)"),
    AP_INIT_TAKE1("WSGICallableObject", cfg_set_string, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "name of the WSGI callable in the script (default "
                  "'application')"),
    AP_INIT_TAKE1("WSGIProcessGroup", cfg_process_group, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "process group that runs the app; %{GLOBAL} is embedded mode"),
    DIR_FLAG("WSGIPassAuthorization", pass_authorization,
             "On: pass the Authorization header to the app as "
             "HTTP_AUTHORIZATION"),
    DIR_FLAG("WSGIChunkedRequest", chunked_request,
             "On: accept chunked request bodies (else 411 Length Required)"),
    DIR_FLAG("WSGIScriptReloading", script_reloading,
             "On (default): reload a script whose modification time changed"),
    DIR_FLAG("WSGIErrorOverride", error_override,
             "On: responses with status >= 400 use Apache's ErrorDocument"),
    AP_INIT_TAKE1("WSGIMapHEADToGET", cfg_map_head, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "On, Off or Auto (default): show HEAD to the app as GET "
                  "(Auto: when output filters could depend on the body)"),
    AP_INIT_TAKE1("WSGIPythonHome", cfg_python_home, NULL, RSRC_CONF,
                  "prefix of the Python installation or virtual environment"),
    AP_INIT_TAKE1("WSGIPythonPath", cfg_python_path, NULL, RSRC_CONF,
                  "colon-separated directories added to sys.path "
                  "(site.addsitedir, so .pth files work)"),
    AP_INIT_RAW_ARGS("WSGIImportScript", cfg_import_script, NULL, RSRC_CONF,
                     "script-path application-group=G [process-group=P]: "
                     "load the script when a process starts"),
    AP_INIT_FLAG("PyhostMetrics", pyh_metrics_set_enabled, NULL, RSRC_CONF,
                 "On (default): count requests in shared memory for "
                 "SetHandler pyhost-metrics and mod_status; Off: do not"),
    AP_INIT_FLAG("WSGIRestrictEmbedded", cfg_restrict_embedded, NULL,
                 RSRC_CONF,
                 "On: never start Python in Apache's own child processes"),
    AP_INIT_RAW_ARGS("WSGIDaemonProcess", cfg_daemon_process, NULL, RSRC_CONF,
                     "name [processes=N threads=N user=U group=G ...]: a "
                     "group of daemon processes to run apps in"),
    AP_INIT_TAKE1("WSGISocketPrefix", cfg_socket_prefix, NULL, RSRC_CONF,
                  "path prefix of the daemon groups' UNIX sockets (relative "
                  "to ServerRoot)"),
    AP_INIT_FLAG("WSGIPerInterpreterGIL", cfg_gil_mode, NULL, RSRC_CONF,
                 "On: every named application group gets its own GIL "
                 "(Python 3.12+); the main interpreter keeps the shared one"),
    AP_INIT_FLAG("WSGIFreeThreading", cfg_gil_mode, "ft", RSRC_CONF,
                 "On: run a free-threaded Python with the GIL disabled "
                 "(default Off: the GIL stays on)"),
    AP_INIT_RAW_ARGS("ASGIScriptAlias", cfg_script_alias,
                     (void *)&cfg_asgi_alias, RSRC_CONF,
                     "URL-path script-path [callable-object=NAME] "
                     "[application-group=G] [lifespan=auto|on|off]: serve the "
                     "ASGI app at URL-path (callable: application, else app)"),
    AP_INIT_RAW_ARGS("ASGIScriptAliasMatch", cfg_script_alias,
                     (void *)&cfg_asgi_match, RSRC_CONF,
                     "regex script-path [options]: like ASGIScriptAlias; "
                     "$1.. in script-path take the regex's groups"),
    AP_INIT_TAKE1("ASGILifespan", cfg_asgi_lifespan, NULL, RSRC_CONF,
                  "auto (default: run the lifespan protocol unless the app "
                  "refuses it), on (a failure stops the mount) or off"),
    AP_INIT_TAKE1("ASGIEventLoop", cfg_asgi_event_loop, NULL, RSRC_CONF,
                  "auto (default: uvloop when installed), asyncio or uvloop"),
    AP_INIT_TAKE1("ASGIWebSocketMaxMessage", cfg_ws_number, (void *)0,
                  RSRC_CONF, "largest WebSocket message accepted, in bytes "
                  "(default 16777216); larger ones close with 1009"),
    AP_INIT_TAKE1("ASGIWebSocketPingInterval", cfg_ws_number, (void *)1,
                  RSRC_CONF, "seconds of silence before a keepalive ping "
                  "(default 20, 0: no pings)"),
    AP_INIT_TAKE1("ASGIWebSocketPingTimeout", cfg_ws_number, (void *)2,
                  RSRC_CONF, "seconds to wait for the pong before closing "
                  "with 1011 (default 20)"),
    AP_INIT_FLAG("ASGIWebSocketCompression", cfg_ws_compression, NULL,
                 RSRC_CONF, "On (default): agree to permessage-deflate "
                 "when the client offers it; Off: never"),
    PYH_COMPAT_COMMANDS,
    {.name = NULL}  /* designated: clang warns on {NULL} (missing fields) */
};

/* ---- startup checks --------------------------------------------------------- */

/* Whether a user (uid, gid + supplementary groups) may use path with `mode`
 * (R_OK/X_OK bits) by the permission bits alone. */
static int cfg_user_may(const struct stat *st, uid_t uid, const gid_t *gids,
                        int ngids, int mode)
{
    int shift, i;
    if (uid == 0)
        return 1;
    if (st->st_uid == uid) {
        shift = 6;
    }
    else {
        shift = 0;
        for (i = 0; i < ngids; i++)
            if (st->st_gid == gids[i])
                shift = 3;
    }
    return (int)(((st->st_mode >> shift) & 7) & (unsigned)mode) == mode;
}

/* Whose access the startup checks test, and how messages name things. */
typedef struct {
    const char *user;     /* NULL: don't check readability */
    uid_t uid;
    gid_t gid;
    const char *who;      /* "Apache's User", "daemon group 'x' user" */
    const char *setting;  /* "WSGIPythonHome", "python-home=" */
} cfg_who;

/* Returns the first component of `path` that the user cannot search
 * (or, for the path itself, read), or NULL when all is accessible. */
static const char *cfg_unreadable_component(apr_pool_t *p, const char *path,
                                            const cfg_who *w, mode_t *mode_out)
{
    gid_t gids[64];
    int ngids = 64;
    char *walk = apr_pstrdup(p, path);
    char *slash = walk;
    struct stat st;

    if (geteuid() != 0 || !w->user)
        return NULL; /* children keep our own identity */
    if (getgrouplist(w->user, w->gid, gids, &ngids) < 0) {
        gids[0] = w->gid;
        ngids = 1;
    }
    for (;;) {
        int last;
        slash = strchr(slash + 1, '/');
        last = slash == NULL;
        if (!last)
            *slash = '\0';
        if (*walk && stat(walk, &st) == 0) {
            int need = S_ISDIR(st.st_mode) ? X_OK : 0;
            if (last)
                need |= R_OK;
            if (!cfg_user_may(&st, w->uid, gids, ngids, need)) {
                *mode_out = st.st_mode & 07777;
                return walk;
            }
        }
        if (last)
            return NULL;
        *slash = '/';
    }
}

static int cfg_is_file(apr_pool_t *p, const char *path)
{
    apr_finfo_t fi;
    return apr_stat(&fi, path, APR_FINFO_TYPE, p) == APR_SUCCESS
           && fi.filetype == APR_REG;
}

/* Reads "key = value" from a venv's pyvenv.cfg; NULL when absent. */
static const char *cfg_pyvenv_value(apr_pool_t *p, const char *cfg,
                                    const char *key)
{
    char line[1024];
    FILE *f = fopen(cfg, "r");
    const char *found = NULL;
    size_t klen = strlen(key);
    if (!f)
        return NULL;
    while (!found && fgets(line, sizeof(line), f)) {
        char *s = line, *e;
        while (apr_isspace(*s))
            s++;
        if (strncmp(s, key, klen))
            continue;
        s += klen;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s++ != '=')
            continue;
        while (*s == ' ' || *s == '\t')
            s++;
        e = s + strlen(s);
        while (e > s && apr_isspace(e[-1]))
            *--e = '\0';
        found = apr_pstrdup(p, s);
    }
    fclose(f);
    return found;
}

static const char *cfg_unreadable_message(apr_pool_t *p, const char *what,
                                          const char *path, const cfg_who *w)
{
    mode_t mode = 0;
    const char *blocked = cfg_unreadable_component(p, path, w, &mode);
    if (!blocked)
        return NULL;
    return apr_psprintf(
        p,
        "PYH0003: %s '%s' cannot read %s '%s' ('%s' is mode %04o); "
        "use a Python or venv outside it (e.g. /usr/bin/python3 -m venv "
        "/opt/venv) or grant that user read access",
        w->who, w->user, what, path, blocked, (unsigned)mode);
}

/* The X.Y of the first lib/pythonX.Y/os.py under prefix, or NULL. */
static const char *cfg_installed_version(apr_pool_t *p, const char *prefix)
{
    apr_dir_t *dir;
    apr_finfo_t fi;
    const char *found = NULL;
    const char *lib = apr_pstrcat(p, prefix, "/lib", NULL);
    if (apr_dir_open(&dir, lib, p) != APR_SUCCESS)
        return NULL;
    while (!found && apr_dir_read(&fi, APR_FINFO_NAME, dir) == APR_SUCCESS) {
        if (!strncmp(fi.name, "python3.", 8)
            && cfg_is_file(p, apr_pstrcat(p, lib, "/", fi.name, "/os.py", NULL)))
            found = apr_pstrdup(p, fi.name + 6);
    }
    apr_dir_close(dir);
    return found;
}

/* Checks WSGIPythonHome (or the Python the module was built for) before any
 * child starts, so that a wrong home is one line at startup rather than
 * "No module named encodings" in every child. */
static const char *cfg_check_home(apr_pool_t *p, const char *home,
                                  const char *what, const cfg_who *w)
{
    const char *venv_cfg, *prefix, *msg, *landmark;

    if (!home) {
        home = PYH_PYTHON_HOME;
        what = "the Python mod_pyhost was built for";
    }
    if (!ap_is_directory(p, home))
        return apr_psprintf(p,
                            "PYH0001: %s '%s' is not a directory; point "
                            "%s at a Python " PYH_PY_VERSION_STR
                            " prefix or venv",
                            what, home, w->setting);
    prefix = home;
    venv_cfg = apr_pstrcat(p, home, "/pyvenv.cfg", NULL);
    if (cfg_is_file(p, venv_cfg)) {
        const char *version = cfg_pyvenv_value(p, venv_cfg, "version");
        const char *bin = cfg_pyvenv_value(p, venv_cfg, "home");
        if (!version)
            version = cfg_pyvenv_value(p, venv_cfg, "version_info");
        if (version && strncmp(version, PYH_PY_VERSION_STR ".",
                               strlen(PYH_PY_VERSION_STR ".")))
            return apr_psprintf(p,
                                "PYH0002: %s '%s' is a Python %s venv but "
                                "mod_pyhost was built for Python "
                                PYH_PY_VERSION_STR "; rebuild pyhost inside "
                                "that venv (pip install mod-pyhost) or use a "
                                "Python " PYH_PY_VERSION_STR " venv",
                                what, home, version);
        if ((msg = cfg_unreadable_message(p, "the venv", home, w)))
            return msg;
        if (bin) {
            char *b = apr_pstrdup(p, bin), *slash = strrchr(b, '/');
            if (slash && slash != b)
                *slash = '\0';
            prefix = b;
        }
    }
    landmark = apr_pstrcat(p, prefix, "/lib/" PYH_PY_LIBDIR_STR "/os.py",
                           NULL);
    if (!cfg_is_file(p, landmark)) {
        const char *other = cfg_installed_version(p, prefix);
        if (other)
            return apr_psprintf(p,
                                "PYH0002: %s '%s' is Python %s but mod_pyhost "
                                "was built for Python " PYH_PY_VERSION_STR
                                PYH_ABI_TAG "; rebuild pyhost with that "
                                "Python (pip install mod-pyhost) or point %s at a "
                                "Python " PYH_PY_VERSION_STR PYH_ABI_TAG
                                " prefix or venv",
                                what, home, other, w->setting);
        return apr_psprintf(p,
                            "PYH0001: %s '%s' is not a Python installation "
                            "(no %s); point %s at the prefix of "
                            "Python " PYH_PY_VERSION_STR ", the Python "
                            "mod_pyhost was built for, or at a venv made "
                            "from it",
                            what, home, landmark, w->setting);
    }
    return cfg_unreadable_message(p, "the Python installation", prefix, w);
}

/* One script's readability by the user that will load it: a PYH0115
 * warning naming what blocks it. */
static void cfg_warn_unreadable(apr_pool_t *p, server_rec *s, const char *what,
                                const char *script, pyh_daemon *d)
{
    cfg_who w = {ap_unixd_config.user_name, ap_unixd_config.user_id,
                 ap_unixd_config.group_id, "Apache's User", ""};
    const char *blocked;
    mode_t mode = 0;
    if (d) {
        w.user = d->user;
        w.uid = d->uid;
        w.gid = d->gid;
        w.who = apr_psprintf(p, "WSGIDaemonProcess %s user", d->name);
    }
    if (!cfg_is_file(p, script)
        || !(blocked = cfg_unreadable_component(p, script, &w, &mode)))
        return;
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                 "PYH0115: %s: %s '%s' cannot read the script '%s' ('%s' is "
                 "mode %04o); its requests will fail until that user can "
                 "read it",
                 what, w.who, w.user, script, blocked, (unsigned)mode);
}

void pyh_warn_unreadable_scripts(apr_pool_t *p, server_rec *s)
{
    server_rec *v;
    int i;
    for (v = s; v; v = v->next) {
        pyh_server_conf *sc =
            ap_get_module_config(v->module_config, &pyhost_module);
        for (i = 0; i < sc->aliases->nelts; i++) {
            const pyh_alias *a = &APR_ARRAY_IDX(sc->aliases, i, pyh_alias);
            const char *g = a->options.process_group;
            pyh_daemon *d = NULL;
            if (a->regexp || a->is_dir)
                continue; /* which file runs depends on the URL */
            if (g && g[0] != '%'
                && !(d = apr_hash_get(pyh_globals.daemons_by_name, g,
                                      APR_HASH_KEY_STRING)))
                continue;
            cfg_warn_unreadable(p, s, apr_psprintf(p, "%s %s",
                                                   "WSGIScriptAlias",
                                                   a->location),
                                a->script, d);
        }
    }
    for (i = 0; i < pyh_globals.imports->nelts; i++) {
        const pyh_import *imp =
            &APR_ARRAY_IDX(pyh_globals.imports, i, pyh_import);
        pyh_daemon *d = apr_hash_get(pyh_globals.daemons_by_name,
                                     imp->process_group, APR_HASH_KEY_STRING);
        cfg_warn_unreadable(p, s, "WSGIImportScript", imp->script, d);
    }
}

const char *pyh_check_python_home(apr_pool_t *p, server_rec *s)
{
    cfg_who w = {ap_unixd_config.user_name, ap_unixd_config.user_id,
                 ap_unixd_config.group_id, "Apache's User", "WSGIPythonHome"};
    const char *err;
    int i;
    (void)s;
    if (!pyh_globals.restrict_embedded
        && (err = cfg_check_home(p, pyh_globals.python_home, "WSGIPythonHome",
                                 &w)))
        return err;
    for (i = 0; i < pyh_globals.daemons->nelts; i++) {
        pyh_daemon *d = APR_ARRAY_IDX(pyh_globals.daemons, i, pyh_daemon *);
        const char *home = d->python_home ? d->python_home
                                          : pyh_globals.python_home;
        w.user = d->user;
        w.uid = d->uid;
        w.gid = d->gid;
        w.who = apr_psprintf(p, "WSGIDaemonProcess %s user", d->name);
        w.setting = d->python_home ? "python-home=" : "WSGIPythonHome";
        if ((err = cfg_check_home(p, home,
                                  apr_psprintf(p, "WSGIDaemonProcess %s %s",
                                               d->name,
                                               d->python_home ? "python-home"
                                                              : "WSGIPythonHome"),
                                  &w)))
            return err;
    }
    return NULL;
}
