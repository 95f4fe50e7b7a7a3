/* mod_bench_hello.c - the ceiling for anything that runs inside Apache: a
 * content handler that answers "Hello world!" (12 bytes) from C, used by
 * bench/run.py as the reference every other setup is a ratio to. */
#include "httpd.h"
#include "http_config.h"
#include "http_protocol.h"

static int hello_handler(request_rec *r)
{
    static const char body[] = "Hello world!";
    if (!r->handler || strcmp(r->handler, "bench-hello"))
        return DECLINED;
    ap_set_content_type(r, "text/plain");
    ap_set_content_length(r, sizeof(body) - 1);
    if (!r->header_only)
        ap_rwrite(body, sizeof(body) - 1, r);
    return OK;
}

static void hello_register(apr_pool_t *p)
{
    (void)p;
    ap_hook_handler(hello_handler, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(bench_hello) = {
    STANDARD20_MODULE_STUFF, NULL, NULL, NULL, NULL, NULL, hello_register,
    AP_MODULE_FLAG_NONE
};
