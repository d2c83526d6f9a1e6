/* fuzz_json.c -- libFuzzer harness for the JSON scanner and writer. A
 * request that scans is written back with json_put_string() and scanned
 * again: the fields must come back byte for byte.
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined \
 *            -o fuzz_json tests/fuzz/fuzz_json.c sha1.c */
#define WSPUSH_NO_MAIN
#include "../../wspush.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(struct span a, struct span b)
{
    if (a.p == NULL || b.p == NULL)
        return a.p == b.p;
    return a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
}

/* True if s lies inside one of the two buffers. */
static int inside(struct span s, const unsigned char *a, const unsigned char *b, size_t n)
{
    return s.p == NULL || (s.p >= a && s.p + s.len <= a + n) ||
           (s.p >= b && s.p + s.len <= b + n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *p = malloc(size ? size : 1);
    unsigned char *scratch_n = malloc(size ? size : 1);
    memcpy(p, data, size);
    struct request r;
    struct failure f;
    if (json_parse_request(p, size, &r, scratch_n, &f) == PARSE_DONE) {
        if (!inside(r.req, p, scratch_n, size) || !inside(r.text, p, scratch_n, size) ||
            !inside(r.userkey, p, scratch_n, size) || !inside(r.token, p, scratch_n, size))
            abort();
        struct buf b = { NULL, 0, 0 };
        struct span *fields[4] = { &r.req, &r.text, &r.userkey, &r.token };
        static const char *const names[4] = { "\"req\":", "\"text\":", "\"userkey\":",
                                               "\"token\":" };
        buf_puts(&b, "{");
        for (int i = 0; i < 4; i++) {
            if (fields[i]->p == NULL)
                continue;
            if (b.len > 1)
                buf_puts(&b, ",");
            buf_puts(&b, names[i]);
            json_put_string(&b, fields[i]->p, fields[i]->len);
        }
        buf_puts(&b, "}");
        unsigned char *again_scratch = malloc(b.len);
        struct request again;
        if (json_parse_request(b.data, b.len, &again, again_scratch, &f) != PARSE_DONE ||
            !same(r.req, again.req) || !same(r.text, again.text) ||
            !same(r.userkey, again.userkey) || !same(r.token, again.token))
            abort();            /* the writer's output did not read back */
        free(again_scratch);
        buf_free(&b);
    } else if (f.why == NULL || f.at > size ||
               (f.code != JSON_MALFORMED && f.code != JSON_WRONG_TYPE)) {
        abort();
    }
    free(p);
    free(scratch_n);
    return 0;
}
