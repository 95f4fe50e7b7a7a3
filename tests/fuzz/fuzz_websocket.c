/* fuzz_websocket.c - libFuzzer target for module/websocket.c, the sans-I/O
 * WebSocket core: arbitrary client bytes, fed in arbitrary pieces, with and
 * without permessage-deflate, must never crash, leak or hand out a text
 * message that is not UTF-8; the permessage-deflate offer parser gets the
 * same bytes as a header value.
 *
 * Build and run by hand (self-contained; scripts/fuzz.sh builds every
 * tests/fuzz/fuzz_*.c the same way, with module/ on the include path):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Imodule \
 *       tests/fuzz/fuzz_websocket.c module/websocket.c -lz -o /tmp/fuzz_websocket
 *   /tmp/fuzz_websocket -max_total_time=60 tests/fuzz/corpus/fuzz_websocket
 *
 * Input layout: byte 0 = flags (bit 0 permessage-deflate, bit 1
 * server_no_context_takeover, bit 2 client_no_context_takeover, bit 3 a
 * 1 KiB message limit, bit 4 echo messages back, bit 5 send a close
 * first), byte 1 = feed piece size (0 = all at once), rest = client bytes.
 * FUZZ_SOURCES: module/websocket.c
 * FUZZ_LIBS: -lz */
#include "websocket.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void drain(pyh_ws *ws, int echo)
{
    pyh_ws_event ev;
    size_t n;
    while (pyh_ws_next_event(ws, &ev)) {
        if (ev.type == PYH_WS_EV_TEXT && !pyh_ws_utf8_valid(ev.data, ev.len))
            abort(); /* the core promised UTF-8 */
        if (ev.type == PYH_WS_EV_ERROR && !pyh_ws_close_code_valid(ev.code))
            abort();
        if (echo && (ev.type == PYH_WS_EV_TEXT || ev.type == PYH_WS_EV_BINARY))
            if (pyh_ws_send_message(ws, ev.type == PYH_WS_EV_BINARY, ev.data, ev.len) != 0)
                abort(); /* open and valid: sending must work */
        if (ev.type == PYH_WS_EV_PING)
            pyh_ws_send_ping(ws, ev.data, ev.len);
    }
    /* Write it "to the socket" in two pieces, as a short write would. */
    pyh_ws_output(ws, &n);
    pyh_ws_output_consumed(ws, n / 2);
    pyh_ws_output(ws, &n);
    pyh_ws_output_consumed(ws, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pyh_ws_pmd pmd;
    pyh_ws *ws;
    size_t piece;
    unsigned flags;
    char resp[256];
    char *offer;

    if (size < 2)
        return 0;
    flags = data[0];
    piece = data[1];
    data += 2;
    size -= 2;

    offer = malloc(size + 1);
    if (!offer)
        return 0;
    memcpy(offer, data, size);
    offer[size] = '\0';
    if (pyh_ws_pmd_negotiate(offer, &pmd, resp, sizeof(resp)) == 1 &&
        (!pmd.enabled || strlen(resp) >= sizeof(resp)))
        abort();
    free(offer);

    memset(&pmd, 0, sizeof(pmd));
    pmd.enabled = flags & 1;
    pmd.server_no_context_takeover = (flags >> 1) & 1;
    pmd.client_no_context_takeover = (flags >> 2) & 1;
    ws = pyh_ws_new((flags & 8) ? 1024 : 0, &pmd);
    if (!ws)
        return 0;
    if (flags & 32)
        pyh_ws_send_close(ws, 1000, "bye", 3);
    if (!piece)
        piece = size ? size : 1;
    while (size) {
        size_t n = size < piece ? size : piece;
        pyh_ws_feed(ws, data, n);
        data += n;
        size -= n;
        drain(ws, flags & 16);
    }
    pyh_ws_feed_eof(ws);
    drain(ws, flags & 16);
    if (pyh_ws_get_state(ws) != PYH_WS_CLOSED)
        abort(); /* after EOF the connection is over */
    pyh_ws_free(ws);
    return 0;
}
