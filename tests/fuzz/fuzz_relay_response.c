/* fuzz_relay_response.c - libFuzzer target: the Apache child reading a
 * daemon's response (module/wire.c: pyh_wire_header, pyh_wire_resp_next,
 * pyh_wire_parse_h, pyh_wire_parse_i and pyh_wire_parse_s, in the order relay.c's
 * relay_response calls them). The input is the byte stream a daemon
 * writes: frames of an 8-byte header and a payload. Each payload is
 * copied to a buffer of exactly its length, as relay.c reads it, so a read
 * past it is a sanitizer report; the protocol's rules are checked too. */
#define PYH_MODULE_RECORD_FILE
#include "relay.h"

#include <stdio.h>
#include <stdlib.h>

static apr_pool_t *pool;
static const char *lo, *hi;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_relay_response: %s\n", what);
    abort();
}

static void check_str(const char *s)
{
    if (!s)
        return;
    if (s < lo || s >= hi || s + strlen(s) >= hi)
        fail("a decoded string is not whole inside its payload");
}

static int check_entry(void *unused, const char *key, const char *val)
{
    (void)unused;
    if (!key || !val)
        fail("a header without name or value");
    check_str(key);
    check_str(val);
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
    pyh_wire_resp seen = {0, 0, 0};
    int headers = 0, nframes = 0, asked = 0, done = 0;
    size_t pos = 0;
    const char *verdict = "incomplete"; /* the input ended first */

    while (!done && size - pos >= PYH_FRAME_HDR) {
        int type, order, status;
        uint32_t len;
        char *payload = NULL;
        pyh_wire_h h;

        if (pyh_wire_header(data + pos, &type, &len) < 0) {
            if (len <= PYH_FRAME_MAX)
                fail("refused a frame header within the size limit");
            verdict = "refused";
            break;
        }
        if (len > PYH_FRAME_MAX)
            fail("accepted a frame over the size limit");
        pos += PYH_FRAME_HDR;
        order = pyh_wire_resp_next(&seen, type, len);
        if (order == PYH_WIRE_RETRY) {
            if (nframes || asked || type != PYH_F_GOODBYE)
                fail("a retry after the daemon had started on the request");
            verdict = "complete";
            break;
        }
        nframes++;
        if (order == PYH_WIRE_BAD) {
            verdict = "refused";
            break;
        }
        /* What the order check let through. */
        if (type == PYH_F_DATA && !headers)
            fail("body data before the headers");
        if ((type == PYH_F_STATUS || type == PYH_F_HEADERS) && headers)
            fail("a status or second headers after the headers");
        if (len > size - pos)
            break; /* the daemon died mid-frame */
        if (len) {
            payload = malloc(len);
            if (!payload)
                break;
            memcpy(payload, data + pos, len);
        }
        pos += len;
        lo = payload;
        hi = payload ? payload + len : NULL;
        switch (type) {
        case PYH_F_HEADERS:
            h.headers = apr_table_make(pool, 4);
            if (pyh_wire_parse_h(payload, len, &h) < 0) {
                verdict = "refused";
                done = 1;
                break;
            }
            if (h.fx.status < 100 || h.fx.status > 999)
                fail("accepted headers with an impossible status");
            check_str(h.status_line);
            check_str(h.content_type);
            apr_table_do(check_entry, NULL, h.headers, NULL);
            headers = 1;
            break;
        case PYH_F_INTERIM: {
            apr_table_t *hint = apr_table_make(pool, 4);
            if (headers)
                fail("an interim response after the headers");
            if (pyh_wire_parse_i(payload, len, hint) < 0) {
                verdict = "refused";
                done = 1;
                break;
            }
            apr_table_do(check_entry, NULL, hint, NULL);
            break;
        }
        case PYH_F_STATUS:
            if (pyh_wire_parse_s(payload, len, &status) < 0)
                verdict = "refused";
            else if (status < 100 || status > 999)
                fail("accepted an impossible status");
            else
                verdict = "complete";
            done = 1;
            break;
        case PYH_F_READ:
            asked = 1;
            break;
        case PYH_F_END:
        case PYH_F_ABORT:
            verdict = "complete";
            done = 1;
            break;
        case PYH_F_DATA:
        case PYH_F_FLUSH:
            break;
        default:
            fail("accepted a frame of an unknown type");
        }
        free(payload);
    }
    /* tests/test_fuzz_corpus.py checks each seed's verdict. */
    if (getenv("FUZZ_TRACE"))
        fprintf(stderr, "verdict: %s\n", verdict);
    apr_pool_clear(pool);
    return 0;
}
