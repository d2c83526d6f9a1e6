/* fuzz_handshake.c -- libFuzzer harness for the request head parser, the
 * upgrade rules, the accept key and the static file path check.
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined \
 *            -o fuzz_handshake tests/fuzz/fuzz_handshake.c sha1.c */
#define WSPUSH_NO_MAIN
#include "../../wspush.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *p = malloc(size ? size : 1);    /* exact size for ASan */
    memcpy(p, data, size);
    struct http_request r;
    struct failure f;
    enum http_kind kind;
    enum parse res = http_parse_head(p, size, &r, &f);

    if (res == PARSE_MORE && size >= MAX_REQUEST_HEAD)
        abort();                /* a head past the limit must be refused */
    if (res == PARSE_FAIL && f.code != 400 && f.code != 431)
        abort();
    if (res == PARSE_DONE) {
        if (r.head_len == 0 || r.head_len > size || r.head_len > MAX_REQUEST_HEAD)
            abort();
        /* The head alone parses the same; one byte less never succeeds. */
        struct http_request again;
        if (http_parse_head(p, r.head_len, &again, &f) != PARSE_DONE ||
            again.head_len != r.head_len)
            abort();
        if (http_parse_head(p, r.head_len - 1, &again, &f) == PARSE_DONE)
            abort();
        if (http_check(&r, &kind, &f) == PARSE_DONE) {
            if (kind == HTTP_UPGRADE) {
                char accept_key[ACCEPT_LEN + 1];
                unsigned char digest[SHA1_DIGEST_LEN];
                if (!ws_key_valid(r.ws_key))
                    abort();
                ws_accept(r.ws_key, accept_key, digest);
                if (strlen(accept_key) != ACCEPT_LEN)
                    abort();
            } else {
                /* Never leave the www folder: no absolute path, no
                 * segment that starts with a dot ("..", ".git"). */
                char path[MAX_PATH_LEN];
                if (url_to_path(r.target, path, sizeof path, &f) == PARSE_DONE &&
                    (path[0] == '/' || path[0] == '.' || strstr(path, "/.") != NULL))
                    abort();
            }
        } else if (f.code < 400 || f.code > 431) {
            abort();
        }
    }
    free(p);
    return 0;
}
