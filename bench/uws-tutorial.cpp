// bench/uws-tutorial.cpp -- the tutorial's requests on uWebSockets, for
// bench/run.sh's comparison (UWS=PATH make bench). Not part of wspush.
// uWebSockets is not in Debian; with its source beside this checkout:
//   git clone https://github.com/uNetworking/uWebSockets   (66dcff3 here)
//   git clone https://github.com/uNetworking/uSockets      (86097c4 here)
//   make -C uSockets                       # epoll, no TLS
//   g++ -O2 -std=c++20 -flto=auto -DUWS_NO_ZLIB -I uWebSockets/src \
//       -I uSockets/src -o uws-tutorial bench/uws-tutorial.cpp uSockets/*.o
// Run: ./uws-tutorial PORT [raw]. It answers what wsbench sends, as the
// tutorial's server does, but takes every shortcut wspush does not: no
// JSON parsing or escaping (strings are cut out by their quotes), no
// UTF-8 or close-code checks beyond the library's, no log, no limits.
#include "App.h"
#include <map>
#include <string>
#include <cstdlib>
struct Data { std::string key; bool admin = false; };
using WS = uWS::WebSocket<false, true, Data>;
static std::map<std::string, WS *> lookup;
static bool raw;
static std::string field(std::string_view m, std::string_view name) {
    std::string pat = "\"" + std::string(name) + "\":\"";
    size_t a = m.find(pat);
    if (a == std::string_view::npos) return "";
    a += pat.size();
    size_t b = a;
    while (b < m.size() && m[b] != '"') { if (m[b] == '\\') b++; b++; }
    return std::string(m.substr(a, b - a));
}
int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 9001;
    raw = argc > 2;
    uWS::App().ws<Data>("/*", {
        .compression = uWS::DISABLED, .maxPayloadLength = 16 * 1024 * 1024, .idleTimeout = 120,
        .maxBackpressure = 64 * 1024 * 1024,
        .upgrade = [](auto *res, auto *req, auto *ctx) {
            std::string key(req->getHeader("sec-websocket-key"));
            res->template upgrade<Data>({key}, req->getHeader("sec-websocket-key"),
                req->getHeader("sec-websocket-protocol"), req->getHeader("sec-websocket-extensions"), ctx);
        },
        .open = [](auto *ws) { lookup[ws->getUserData()->key] = ws; },
        .message = [](auto *ws, std::string_view m, uWS::OpCode op) {
            if (raw) { ws->send(m, op); return; }
            std::string req = field(m, "req");
            if (req == "get connections") {
                ws->getUserData()->admin = true;
                std::string out = "{\"resp\":\"get connections\",\"content\":{";
                bool first = true;
                for (auto &kv : lookup) { out += (first ? "\"" : ",\"") + kv.first + "\":\"" + (kv.second->getUserData()->admin ? "admin" : "user") + "\""; first = false; }
                out += "}}";
                ws->send(out, uWS::OpCode::TEXT);
            } else if (req == "push a user") {
                auto it = lookup.find(field(m, "userkey"));
                if (it != lookup.end()) {
                    it->second->send("{\"resp\":\"text\",\"content\":\"" + field(m, "text") + "\"}", uWS::OpCode::TEXT);
                    ws->send("{\"resp\":\"text\",\"content\":\"Already sent.\"}", uWS::OpCode::TEXT);
                }
            } else {
                ws->send("{\"resp\":\"" + req + "\",\"content\":\"" + field(m, "text") + "\"}", uWS::OpCode::TEXT);
            }
        },
        .close = [](auto *ws, int, std::string_view) { lookup.erase(ws->getUserData()->key); }
    }).listen(port, [port](auto *s) { if (s) printf("uws listening on port %d\n", port); fflush(stdout); }).run();
}
