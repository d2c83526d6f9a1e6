/* fuzz_json.c -- libFuzzer harness for the JSON scanner and writer. A
 * request that scans is written back with json_put() and scanned again:
 * the fields must come back byte for byte. The text and the token's raw
 * place must lie inside the buffers. Then the log escape runs over the
 * input, with the token's place hidden.
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
    char line[LOG_LINE_MAX];
    memcpy(p, data, size);
    struct request r;
    struct failure f;
    enum parse res = json_parse_request(p, size, &r, scratch_n, &f);
    for (int i = 0; i < N_FIELDS; i++)
        if (!inside(r.field[i], p, scratch_n, size) || !inside(r.raw[i], p, p, size))
            abort();
    struct span t = r.raw[F_TOKEN];
    size_t from = t.p ? (size_t)(t.p - p) : size;
    text_escape(line, p, size, LOG_MESSAGE_MAX, from, t.p ? from + t.len : size);
    if (strlen(line) >= sizeof line)
        abort();
    if (res == PARSE_DONE) {
        struct buf b = { NULL, 0, 0 };
        buf_puts(&b, "{");
        for (int i = 0; i < N_FIELDS; i++) {
            if (r.field[i].p == NULL)
                continue;
            if (b.len > 1)
                buf_puts(&b, ",");
            json_put(&b, cspan(field_name[i]));
            buf_puts(&b, ":");
            json_put(&b, r.field[i]);
        }
        buf_puts(&b, "}");
        unsigned char *again_scratch = malloc(b.len);
        struct request again;
        if (json_parse_request(b.data, b.len, &again, again_scratch, &f) != PARSE_DONE)
            abort();            /* the writer's output did not read back */
        for (int i = 0; i < N_FIELDS; i++)
            if (!same(r.field[i], again.field[i]))
                abort();
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
