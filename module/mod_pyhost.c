/* mod_pyhost.c - the module record and hooks: WSGIScriptAlias routing in
 * translate_name, the startup checks in post_config, Python's start in
 * child_init, and the content handler that runs a WSGI request. */
#define PYH_MODULE_RECORD_FILE
#include "pyhost.h"
#include "metrics.h"

#include "http_core.h"
#include "mpm_common.h" /* ap_hook_monitor */
#include "http_protocol.h"
#include "http_request.h"
#include "ap_regex.h"
#include "util_script.h"
#include "apr_strings.h"

/* How much of uri an alias covers: path segments must match whole, and
 * runs of slashes count as one, as mod_alias does. 0: no match. */
static apr_size_t pyh_alias_matches(const char *uri, const char *alias)
{
    const char *a = alias, *u = uri;
    while (*a) {
        if (*a == '/') {
            if (*u != '/')
                return 0;
            while (*a == '/')
                a++;
            while (*u == '/')
                u++;
        }
        else if (*u++ != *a++) {
            return 0;
        }
    }
    if (a[-1] != '/' && *u && *u != '/')
        return 0;
    return (apr_size_t)(u - uri);
}

static void pyh_route_set(request_rec *r, const pyh_alias *a, const char *script,
                          apr_size_t len)
{
    pyh_route *route = apr_palloc(r->pool, sizeof(*route));
    /* SCRIPT_NAME never ends in '/': the slash starts PATH_INFO. */
    while (len && r->uri[len - 1] == '/')
        len--;
    route->alias = a;
    route->script_name = apr_pstrmemdup(r->pool, r->uri, len);
    route->path_info = r->uri + len;
    ap_set_module_config(r->request_config, &pyhost_module, route);
    r->filename = (char *)script;
    r->handler = a->protocol == PYH_PROTO_ASGI ? "asgi-script" : "wsgi-script";
}

static int pyh_translate_name(request_rec *r)
{
    pyh_server_conf *sconf =
        ap_get_module_config(r->server->module_config, &pyhost_module);
    int i;

    if (!sconf->aliases->nelts || r->uri[0] != '/')
        return DECLINED;
    for (i = 0; i < sconf->aliases->nelts; i++) {
        const pyh_alias *a = &APR_ARRAY_IDX(sconf->aliases, i, pyh_alias);
        if (a->regexp) {
            ap_regmatch_t m[AP_MAX_REG_MATCH];
            const char *script;
            if (ap_regexec(a->regexp, r->uri, AP_MAX_REG_MATCH, m, 0))
                continue;
            script = ap_pregsub(r->pool, a->script, r->uri, AP_MAX_REG_MATCH, m);
            if (!script || !(script = ap_server_root_relative(r->pool, script))) {
                ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                              "PYH0022: WSGIScriptAliasMatch %s: bad script "
                              "path from '%s'",
                              a->location, a->script);
                return HTTP_INTERNAL_SERVER_ERROR;
            }
            pyh_route_set(r, a, script, (apr_size_t)m[0].rm_eo);
            return OK;
        }
        else {
            apr_size_t len = pyh_alias_matches(r->uri, a->location);
            if (len && a->is_dir) {
                /* As mod_wsgi: the rest of the URL goes after the
                 * directory, and Apache's directory walk splits the
                 * script file from PATH_INFO (the handler reads both). */
                char *f = apr_pstrcat(r->pool, a->script, "/", r->uri + len,
                                      NULL);
                ap_no2slash(f);
                pyh_route_set(r, a, f, len);
                ((pyh_route *)ap_get_module_config(r->request_config,
                                                   &pyhost_module))
                    ->script_name = NULL;
                return OK;
            }
            if (len) {
                pyh_route_set(r, a, a->script, len);
                return OK;
            }
        }
    }
    return DECLINED;
}

/* Expands WSGIApplicationGroup for this request; "" is the main
 * interpreter. */
static const char *pyh_app_group(request_rec *r, const char *spec,
                                 const char *script_name)
{
    const char *host;
    apr_port_t port;
    if (!spec || !strcmp(spec, "%{GLOBAL}"))
        return "";
    if (!strcmp(spec, "%{SERVER}") || !strcmp(spec, "%{RESOURCE}")) {
        host = r->server->server_hostname ? r->server->server_hostname : "";
        port = ap_get_server_port(r);
        if (port != 80 && port != 443)
            host = apr_psprintf(r->pool, "%s:%u", host, port);
        if (!strcmp(spec, "%{SERVER}"))
            return host;
        return apr_pstrcat(r->pool, host, "|", script_name, NULL);
    }
    if (!strncmp(spec, "%{ENV:", 6) && spec[strlen(spec) - 1] == '}') {
        const char *var = apr_pstrmemdup(r->pool, spec + 6, strlen(spec) - 7);
        const char *v = apr_table_get(r->subprocess_env, var);
        return v ? v : "";
    }
    return spec;
}

static const pyh_dir_conf pyh_defaults = {
    "%{GLOBAL}", "application", "", 0, 0, 1, PYH_HEAD_AUTO, 0,
    NULL, NULL, NULL, 1, NULL, NULL, NULL, NULL, NULL, 0, 0
};

/* ASGI: no callable name means `application`, else `app` (interp.c);
 * chunked request bodies are always welcome. */
static const pyh_dir_conf pyh_asgi_defaults = {
    "%{GLOBAL}", NULL, "", 0, 1, 1, PYH_HEAD_OFF, 0,
    NULL, NULL, NULL, 1, NULL, NULL, NULL, NULL, NULL, 0, 0
};

/* WSGIDispatchScript: lets its functions replace where req runs. */
static int pyh_dispatch(request_rec *r, pyh_request *req)
{
    const char *pg = NULL, *ag = NULL, *co = NULL;
    int status = pyh_dispatch_run(req, &pg, &ag, &co);
    if (status != OK)
        return status;
    if (pg)
        req->conf.process_group = pg;
    if (ag)
        req->app_group = pyh_app_group(r, ag, req->script_name);
    if (co)
        req->conf.callable_object = co;
    return OK;
}

/* A request routed to pyhost (pyh_handler counts it); hs: the
 * WSGIHandlerScript r's handler names, if any. */
static int pyh_handle(request_rec *r, const pyh_route *route,
                      const pyh_handler_script *hs)
{
    const pyh_dir_conf *dconf =
        ap_get_module_config(r->per_dir_config, &pyhost_module);
    pyh_request *req;
    pyh_dir_conf conf;
    pyh_daemon *daemon;
    pyh_interp *in;
    PyObject *app;
    const char *missing;
    int status, asgi = route && route->alias->protocol == PYH_PROTO_ASGI;

    req = apr_pcalloc(r->pool, sizeof(*req));
    req->r = r;
    pyh_overlay_options(&conf, asgi ? &pyh_asgi_defaults : &pyh_defaults,
                        dconf);
    if (route)
        pyh_overlay_options(&req->conf, &conf, &route->alias->options);
    else
        req->conf = conf;
    if (hs) {
        /* mod_wsgi: the script's handle_request serves the file */
        req->script_path = hs->path;
        req->conf.callable_object = "handle_request";
        if (hs->process_group)
            req->conf.process_group = hs->process_group;
        if (hs->application_group)
            req->conf.application_group = hs->application_group;
        if (hs->pass_authorization != PYH_UNSET)
            req->conf.pass_authorization = hs->pass_authorization;
    }

    if (route && route->script_name) {
        req->script_name = route->script_name;
        req->path_info = route->path_info;
    }
    else {
        /* AddHandler/SetHandler, or WSGIScriptAlias to a directory: the
         * file is the script, any extra path Apache found after it is
         * PATH_INFO. */
        if (!route && !hs && !(ap_allow_options(r) & OPT_EXECCGI)) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "PYH0020: Options ExecCGI is off in this directory: "
                          "%s",
                          r->filename);
            return HTTP_FORBIDDEN;
        }
        req->path_info = r->path_info ? r->path_info : "";
        req->script_name = apr_pstrndup(r->pool, r->uri,
                                        ap_find_path_info(r->uri, req->path_info));
    }
    /* A handler script decides itself what a missing file means. */
    if (!hs && r->finfo.filetype != APR_REG) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PYH0021: WSGI script '%s' does not exist or is not a "
                      "file",
                      r->filename);
        return HTTP_NOT_FOUND;
    }
    /* ASGI reads a chunked body to its end; WSGI only when asked to. */
    if ((status = pyh_input_check(r, asgi || req->conf.chunked_request)) != OK)
        return status;
    req->app_group = pyh_app_group(r, req->conf.application_group,
                                   req->script_name);
    if (!asgi && req->conf.dispatch_script
        && (status = pyh_dispatch(r, req)) != OK)
        return status;
    daemon = pyh_daemon_lookup(r, req->conf.process_group, &missing);
    if (missing) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PYH0030: WSGIProcessGroup '%s': no WSGIDaemonProcess "
                      "of that name",
                      missing);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (req->conf.restrict_process
        && (status = pyh_restrict_process_check(req, daemon ? daemon->name
                                                            : "")) != OK)
        return status;
    pyh_metrics_note(r, daemon, req->app_group);
    if (daemon) {
        int status = pyh_daemon_check_available(r, daemon);
        if (status != OK)
            return status;
        if ((daemon->script_user || daemon->script_group)
            && (status = pyh_compat_check_script_owner(
                    r, daemon, req->script_path ? req->script_path
                                                : r->filename)) != OK)
            return status;
        req->conf.process_group = daemon->name; /* %{ENV:x} resolved */
        if (asgi) {
            const char *up = apr_table_get(r->headers_in, "Upgrade");
            if (up && ap_find_token(r->pool, up, "websocket")) {
                ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                              "PYH0261: ASGIScriptAlias %s: WebSockets are "
                              "not relayed to daemon group '%s' yet; answering "
                              "501 (serve the WebSocket mount embedded)",
                              route->alias->location, daemon->name);
                return HTTP_NOT_IMPLEMENTED;
            }
            req->asgi = 1;
            req->lifespan = pyh_asgi_lifespan_mode(r->server, route->alias);
        }
        return pyh_relay_request(r, req, daemon);
    }
    if (!pyh_python_ready()) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      pyh_globals.restrict_embedded
                          ? "PYH0024: WSGIRestrictEmbedded On: this request "
                            "has no daemon process group to run in"
                          : "PYH0005: Python did not start in this process; "
                            "see the PYH0004 message logged at its start");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (!(in = pyh_interp_acquire_for(req->app_group, r->server, asgi)))
        return HTTP_INTERNAL_SERVER_ERROR;
    req->interp = in;
    app = pyh_script_callable(in, r,
                              req->script_path ? req->script_path
                                               : r->filename,
                              req->conf.callable_object,
                              req->conf.script_reloading, &status);
    if (app && asgi) {
        /* returns with the GIL released */
        status = pyh_asgi_handle(in, req, app,
                                 pyh_asgi_lifespan_mode(r->server, route->alias));
        pyh_interp_leave(in);
        return status;
    }
    if (app) {
        status = pyh_wsgi_handle(in, req, app);
        Py_DECREF(app);
    }
    pyh_interp_release(in);
    return status;
}

static int pyh_handler(request_rec *r)
{
    const pyh_route *route =
        ap_get_module_config(r->request_config, &pyhost_module);
    const pyh_handler_script *hs = NULL;
    pyh_mreq m;
    int status, asgi;

    if (!r->handler)
        return DECLINED;
    if (strcmp(r->handler, "wsgi-script")
        && strcmp(r->handler, "application/x-httpd-wsgi")
        && strcmp(r->handler, "asgi-script")
        && !(hs = pyh_handler_script_for(r)))
        return DECLINED;
    asgi = route && route->alias->protocol == PYH_PROTO_ASGI;
    if (!asgi && !strcmp(r->handler, "asgi-script"))
        return DECLINED; /* only ASGIScriptAlias routes to ASGI */
    pyh_metrics_begin(&m, r);
    status = pyh_handle(r, hs ? NULL : route, hs);
    pyh_metrics_end(&m, r, route ? route->alias : NULL, asgi, status);
    return status;
}

static int pyh_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    pyh_reset_globals(pconf);
    pyh_compat_reset(pconf);
    return OK;
}

/* Process groups named statically (inline process-group=, and
 * WSGIImportScript's) must exist; WSGIProcessGroup in a <Directory> is
 * checked per request. */
static const char *pyh_check_process_groups(apr_pool_t *p, server_rec *s)
{
    server_rec *v;
    int i;
    for (v = s; v; v = v->next) {
        pyh_server_conf *sc =
            ap_get_module_config(v->module_config, &pyhost_module);
        for (i = 0; i < sc->aliases->nelts; i++) {
            const pyh_alias *a = &APR_ARRAY_IDX(sc->aliases, i, pyh_alias);
            const char *g = a->options.process_group;
            if (g && g[0] != '%'
                && !apr_hash_get(pyh_globals.daemons_by_name, g,
                                 APR_HASH_KEY_STRING))
                return apr_psprintf(p,
                                    "PYH0030: WSGIScriptAlias %s: "
                                    "process-group=%s names no "
                                    "WSGIDaemonProcess",
                                    a->location, g);
        }
    }
    for (i = 0; i < pyh_globals.imports->nelts; i++) {
        const pyh_import *imp = &APR_ARRAY_IDX(pyh_globals.imports, i, pyh_import);
        const char *g = imp->process_group;
        if (*g && g[0] != '%'
            && !apr_hash_get(pyh_globals.daemons_by_name, g, APR_HASH_KEY_STRING))
            return apr_psprintf(p,
                                "PYH0030: WSGIImportScript %s: "
                                "process-group=%s names no WSGIDaemonProcess",
                                imp->script, g);
    }
    return NULL;
}

/* What would stop a start: checked in post_config, and for `apachectl -t`
 * in check_config, so that a configtest catches it before a restart. */
static const char *pyh_startup_checks(apr_pool_t *pconf, apr_pool_t *ptemp,
                                      server_rec *s)
{
    const char *err;
    if ((err = pyh_compat_check_foreign(ptemp))
        || (err = pyh_check_process_groups(ptemp, s))
        || (err = pyh_daemon_resolve_users(pconf))
        || (err = pyh_check_python_home(ptemp, s)))
        return err;
    return NULL;
}

static int pyh_check_config(apr_pool_t *pconf, apr_pool_t *plog,
                            apr_pool_t *ptemp, server_rec *s)
{
    const char *err;
    (void)plog;
    if (ap_state_query(AP_SQ_RUN_MODE) != AP_SQ_RM_CONFIG_TEST)
        return OK; /* post_config checks, once the error log is open */
    if ((err = pyh_startup_checks(pconf, ptemp, s))) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "%s", err);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    pyh_warn_unreadable_scripts(ptemp, s);
    return OK;
}

static int pyh_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                           apr_pool_t *ptemp, server_rec *s)
{
    const char *err;
    server_rec *v;
    int i = 0;
    (void)plog;
    for (v = s; v; v = v->next) {
        pyh_server_conf *sc =
            ap_get_module_config(v->module_config, &pyhost_module);
        sc->index = i++;
    }
    if ((err = pyh_startup_checks(pconf, ptemp, s))) {
        /* Apache has pointed stderr at the error log by now: one entry. */
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "%s", err);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    pyh_metrics_post_config(pconf, s); /* before anything forks */
    /* The first configuration pass is only a check before Apache detaches;
     * daemons start with the configuration that will run. */
    if (ap_state_query(AP_SQ_CONFIG_GEN) == 0
        || ap_state_query(AP_SQ_RUN_MODE) != AP_SQ_RM_NORMAL)
        return OK;
    pyh_compat_log_notes(s);
    pyh_warn_unreadable_scripts(ptemp, s);
    return pyh_daemon_start_all(pconf, s);
}

static void pyh_child_init(apr_pool_t *pchild, server_rec *s)
{
    pyh_daemon_child_init(pchild, s);
    if (pyh_interp_child_init(pchild, s) < 0)
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     "PYH0004: Python could not start in this child (pid %d); "
                     "its WSGI requests will fail with 500",
                     (int)getpid());
    else
        pyh_asgi_child_init(pchild, s);
}

static void pyh_register_hooks(apr_pool_t *p)
{
    /* As mod_wsgi: Alias (e.g. /static/ under WSGIScriptAlias /) wins,
     * and per-user or mass-virtual-host mapping comes after us. */
    static const char *const after[] = {"mod_alias.c", NULL};
    static const char *const before[] = {"mod_userdir.c", "mod_vhost_alias.c",
                                         NULL};
    (void)p;
    ap_hook_pre_config(pyh_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(pyh_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(pyh_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_monitor(pyh_daemon_monitor, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_translate_name(pyh_translate_name, after, before, APR_HOOK_MIDDLE);
    ap_hook_handler(pyh_handler, NULL, NULL, APR_HOOK_MIDDLE);
    pyh_metrics_register_hooks(p);
    ap_hook_check_config(pyh_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    pyh_auth_register_hooks(p);
    /* Last: adds module records of its own (see directives_compat.c). */
    pyh_compat_register_aliases(p);
}

AP_DECLARE_MODULE(pyhost) = {
    STANDARD20_MODULE_STUFF,
    pyh_create_dir_conf,
    pyh_merge_dir_conf,
    pyh_create_server_conf,
    pyh_merge_server_conf,
    pyh_commands,
    pyh_register_hooks,
    AP_MODULE_FLAG_NONE
};
