/* fuzz_frame.c -- libFuzzer harness for the frame decoder with its UTF-8
 * check and close payloads. The first input byte picks the settings; the
 * rest is the client's byte stream. It is decoded twice, all at once and
 * in pieces the way conn_input() keeps leftovers, and the two must agree.
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined \
 *            -o fuzz_frame tests/fuzz/fuzz_frame.c sha1.c */
#define WSPUSH_NO_MAIN
#include "../../wspush.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A running hash (FNV-1a) of what the decoder handed out. */
static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

/* Decode stream[0..len) in pieces of `piece' bytes; return the hash of
 * every event, and check each one's invariants. */
static uint64_t run(const uint8_t *stream, size_t len, size_t piece,
                    size_t max_message, int text_only)
{
    struct decoder d;
    memset(&d, 0, sizeof d);
    d.max_message = max_message;
    d.text_only = text_only;
    uint64_t h = 0xcbf29ce484222325ULL;
    unsigned char left[MAX_FRAME_HEADER];
    size_t have = 0;
    for (size_t at = 0; at < len; at += piece) {
        size_t n = len - at < piece ? len - at : piece;
        unsigned char *buf = malloc(have + n + 1);
        memcpy(buf, left, have);
        memcpy(buf + have, stream + at, n);
        size_t avail = have + n, pos = 0;
        for (;;) {
            struct failure f;
            size_t used;
            enum parse r = frame_decode(&d, buf + pos, avail - pos, &used, &f);
            if (used > avail - pos)
                abort();
            pos += used;
            if (r == PARSE_MORE)
                break;
            if (r == PARSE_FAIL) {
                if (f.code < 1002 || f.code > 1011 || f.why == NULL)
                    abort();
                h = mix(h, &f.code, sizeof f.code);
                free(buf);
                buf_free(&d.msg);
                return h;
            }
            if (!d.ready)
                continue;
            if (d.data_len > max_message && d.opcode < OP_CLOSE)
                abort();
            if (d.opcode == OP_TEXT && !utf8_valid(d.data, d.data_len))
                abort();                /* text handed out is UTF-8 */
            if (d.opcode == OP_BINARY && text_only)
                abort();
            if (d.opcode == OP_CLOSE) {
                unsigned code;
                struct failure cf;
                /* §7.4: only codes a peer may send get through */
                if (close_parse(d.data, d.data_len, &code, &cf) == PARSE_DONE &&
                    code != CLOSE_NO_STATUS && !((code >= 1000 && code <= 1003) ||
                    (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)))
                    abort();
            }
            h = mix(h, &d.opcode, sizeof d.opcode);
            h = mix(h, d.data, d.data_len);
        }
        have = avail - pos;
        if (have >= MAX_FRAME_HEADER)       /* conn_input() relies on this */
            abort();
        memcpy(left, buf + pos, have);
        free(buf);
    }
    buf_free(&d.msg);
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t max_message = (size_t)1 << (data[0] & 15);
    int text_only = data[0] >> 7;
    size_t piece = 1 + (data[0] >> 4 & 7) * 3;
    if (run(data + 1, size - 1, size, max_message, text_only) !=
        run(data + 1, size - 1, piece, max_message, text_only))
        abort();                /* the pieces changed the outcome */
    return 0;
}
