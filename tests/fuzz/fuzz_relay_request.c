/* fuzz_relay_request.c - libFuzzer target: the daemon decoding a Q frame's
 * payload (module/wire.c, pyh_wire_parse_q, the code relay.c runs). The
 * input is the payload after the 8-byte frame header: fixed fields, then
 * records. Besides what the sanitizers see, it checks what the daemon
 * relies on: every string it hands back lies whole inside the payload. */
#define PYH_MODULE_RECORD_FILE
#include "relay.h"

#include <stdio.h>
#include <stdlib.h>

static apr_pool_t *pool;
static const char *lo, *hi;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_relay_request: %s\n", what);
    abort();
}

/* A string the decoder returned: inside the payload, NUL within it. */
static void check_str(const char *s)
{
    if (!s)
        return;
    if (s < lo || s >= hi)
        fail("a decoded string points outside the payload");
    if (s + strlen(s) >= hi)
        fail("a decoded string runs past the payload");
}

static int check_entry(void *unused, const char *key, const char *val)
{
    (void)unused;
    check_str(key);
    check_str(val);
    if (!key || !val)
        fail("a table entry without name or value");
    return 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (apr_initialize() != APR_SUCCESS || apr_pool_create(&pool, NULL) != APR_SUCCESS)
        fail("APR did not start");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* relay.c reads a payload into a buffer of exactly its length. */
    const char *payload = size ? (const char *)data : NULL;
    pyh_wire_q q;
    int i, ok;

    q.headers_in = apr_table_make(pool, 4);
    q.subprocess_env = apr_table_make(pool, 4);
    lo = payload;
    hi = payload ? payload + size : NULL;
    ok = pyh_wire_parse_q(payload, size, &q) == 0;
    /* tests/test_fuzz_corpus.py checks each seed's verdict. */
    if (getenv("FUZZ_TRACE"))
        fprintf(stderr, "verdict: %s\n", ok ? "accepted" : "refused");
    if (ok) {
        if (size < sizeof(pyh_q_fixed))
            fail("accepted a payload shorter than its fixed fields");
        if (!q.filename || !q.vars[PYH_K_REQUEST_METHOD])
            fail("accepted a request without filename or method");
        for (i = 0; i < PYH_K_COUNT; i++)
            check_str(q.vars[i]);
        check_str(q.filename);
        check_str(q.callable);
        check_str(q.app_group);
        check_str(q.uri);
        apr_table_do(check_entry, NULL, q.headers_in, NULL);
        apr_table_do(check_entry, NULL, q.subprocess_env, NULL);
    }
    apr_pool_clear(pool);
    return 0;
}
