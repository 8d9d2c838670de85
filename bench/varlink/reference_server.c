/* bench/varlink/reference_server.c — org.example.bench on systemd's sd-varlink (libsystemd >= 257 public API).
 *
 * The reference the svckit varlink engine is measured against (bench/varlink/run) and, later, compared with in
 * differential tests. Deliberately one self-contained C file that needs only libsystemd (it also compiles as C++):
 *
 *   cc -O2 reference_server.c $(pkg-config --cflags --libs libsystemd) -o reference_server
 *
 * Usage: reference_server PATH      listen on the AF_UNIX socket PATH (created, mode 0666; unlinked on exit)
 *        reference_server           socket activation (LISTEN_FDS; the fd named "varlink" or the only one)
 *        reference_server --print-idl   print the embedded interface text (checked against the .varlink file)
 * Exits 0 on SIGTERM or SIGINT.
 *
 * Behaviour is exactly the interface's: Echo returns text; Add is checked signed 64-bit addition, overflow is
 * org.example.bench.Overflow; Count requires "more" (otherwise org.varlink.service.ExpectedMore), n < 1 is
 * InvalidParameter(parameter: "n"), else replies i = 0..n-1 with "continues": true on all but the last.
 * Parameter validation (types, missing/unknown fields) is sd-varlink's own: the parsed interface is registered,
 * so the server checks calls against it before the handlers run, and sd_varlink_dispatch checks again.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-event.h>
#include <systemd/sd-json.h>
#include <systemd/sd-varlink.h>
#include <systemd/sd-varlink-idl.h>

/* Must stay byte-identical to bench/varlink/org.example.bench.varlink (bench/varlink/run checks it). */
static const char bench_interface_text[] =
        "interface org.example.bench\n"
        "# returns text unchanged\n"
        "method Echo(text: string) -> (text: string)\n"
        "# signed 64-bit; overflow is the Overflow error\n"
        "method Add(a: int, b: int) -> (sum: int)\n"
        "# n >= 1 replies with i = 0..n-1, continues on all but the last\n"
        "# [Requires 'more' flag]\n"
        "method Count(n: int) -> (i: int)\n"
        "error Overflow()\n";

#ifndef SD_VARLINK_ERROR_EXPECTED_MORE
#define SD_VARLINK_ERROR_EXPECTED_MORE "org.varlink.service.ExpectedMore"
#endif

static int method_echo(sd_varlink *link, sd_json_variant *parameters, sd_varlink_method_flags_t flags, void *userdata) {
        const char *text = NULL;
        static const sd_json_dispatch_field table[] = {
                { "text", SD_JSON_VARIANT_STRING, sd_json_dispatch_const_string, 0, SD_JSON_MANDATORY },
                {}
        };
        int r;
        (void) flags; (void) userdata;

        r = sd_varlink_dispatch(link, parameters, table, &text); /* replies InvalidParameter itself */
        if (r != 0)
                return r;
        return sd_varlink_replybo(link, SD_JSON_BUILD_PAIR_STRING("text", text));
}

struct add_params { int64_t a, b; };

static int method_add(sd_varlink *link, sd_json_variant *parameters, sd_varlink_method_flags_t flags, void *userdata) {
        struct add_params p = {};
        static const sd_json_dispatch_field table[] = {
                { "a", _SD_JSON_VARIANT_TYPE_INVALID, sd_json_dispatch_int64, offsetof(struct add_params, a), SD_JSON_MANDATORY },
                { "b", _SD_JSON_VARIANT_TYPE_INVALID, sd_json_dispatch_int64, offsetof(struct add_params, b), SD_JSON_MANDATORY },
                {}
        };
        int64_t sum;
        int r;
        (void) flags; (void) userdata;

        r = sd_varlink_dispatch(link, parameters, table, &p);
        if (r != 0)
                return r;
        if (__builtin_add_overflow(p.a, p.b, &sum))
                return sd_varlink_error(link, "org.example.bench.Overflow", NULL);
        return sd_varlink_replybo(link, SD_JSON_BUILD_PAIR_INTEGER("sum", sum));
}

static int method_count(sd_varlink *link, sd_json_variant *parameters, sd_varlink_method_flags_t flags, void *userdata) {
        int64_t n = 0;
        static const sd_json_dispatch_field table[] = {
                { "n", _SD_JSON_VARIANT_TYPE_INVALID, sd_json_dispatch_int64, 0, SD_JSON_MANDATORY },
                {}
        };
        int r;
        (void) userdata;

        r = sd_varlink_dispatch(link, parameters, table, &n);
        if (r != 0)
                return r;
        if (!(flags & SD_VARLINK_METHOD_MORE))
                return sd_varlink_error(link, SD_VARLINK_ERROR_EXPECTED_MORE, NULL);
        if (n < 1)
                return sd_varlink_error_invalid_parameter_name(link, "n");
        /* All replies are queued now; sd-varlink buffers them (no flow control: a huge n costs memory). */
        for (int64_t i = 0; i < n - 1; i++) {
                r = sd_varlink_notifybo(link, SD_JSON_BUILD_PAIR_INTEGER("i", i));
                if (r < 0)
                        return r;
        }
        return sd_varlink_replybo(link, SD_JSON_BUILD_PAIR_INTEGER("i", n - 1));
}

static int fail(const char *what, int r) {
        fprintf(stderr, "reference_server: %s: %s\n", what, strerror(r < 0 ? -r : r));
        return 1;
}

int main(int argc, char **argv) {
        sd_varlink_interface *iface = NULL;
        sd_varlink_server *server = NULL;
        sd_event *event = NULL;
        unsigned line = 0, column = 0;
        int r, ret = 1;

        if (argc > 2 || (argc == 2 && argv[1][0] == '-' && strcmp(argv[1], "--print-idl") != 0)) {
                fprintf(stderr, "usage: %s [PATH | --print-idl]\n", argv[0]);
                return 2;
        }
        if (argc == 2 && strcmp(argv[1], "--print-idl") == 0) {
                fputs(bench_interface_text, stdout);
                return 0;
        }

        r = sd_varlink_idl_parse(bench_interface_text, &line, &column, &iface);
        if (r < 0) {
                fprintf(stderr, "reference_server: interface text, line %u column %u: %s\n", line, column, strerror(-r));
                return 1;
        }

        r = sd_varlink_server_new(&server, (sd_varlink_server_flags_t) 0);
        if (r < 0) { ret = fail("sd_varlink_server_new", r); goto out; }
        r = sd_varlink_server_set_info(server, "svckit", "svckit bench reference server (sd-varlink)", "1", "https://example.org/svckit");
        if (r < 0) { ret = fail("sd_varlink_server_set_info", r); goto out; }
        r = sd_varlink_server_add_interface(server, iface);
        if (r < 0) { ret = fail("sd_varlink_server_add_interface", r); goto out; }
        r = sd_varlink_server_bind_method_many(server,
                        "org.example.bench.Echo", method_echo,
                        "org.example.bench.Add", method_add,
                        "org.example.bench.Count", method_count);
        if (r < 0) { ret = fail("sd_varlink_server_bind_method_many", r); goto out; }

        if (argc == 2) {
                (void) unlink(argv[1]);
                r = sd_varlink_server_listen_address(server, argv[1], 0666);
                if (r < 0) { ret = fail("sd_varlink_server_listen_address", r); goto out; }
        } else {
                r = sd_varlink_server_listen_auto(server); /* LISTEN_FDS / LISTEN_FDNAMES, and $SYSTEMD_VARLINK_LISTEN */
                if (r < 0) { ret = fail("sd_varlink_server_listen_auto", r); goto out; }
                if (r == 0) {
                        fprintf(stderr, "reference_server: no socket path given and no socket passed (LISTEN_FDS)\n");
                        ret = 2;
                        goto out;
                }
        }

        r = sd_event_default(&event);
        if (r < 0) { ret = fail("sd_event_default", r); goto out; }
        /* A NULL handler makes sd-event exit the loop (code 0) on the signal. */
        r = sd_event_add_signal(event, NULL, SIGTERM | SD_EVENT_SIGNAL_PROCMASK, NULL, NULL);
        if (r < 0) { ret = fail("sd_event_add_signal(SIGTERM)", r); goto out; }
        r = sd_event_add_signal(event, NULL, SIGINT | SD_EVENT_SIGNAL_PROCMASK, NULL, NULL);
        if (r < 0) { ret = fail("sd_event_add_signal(SIGINT)", r); goto out; }
        r = sd_varlink_server_attach_event(server, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0) { ret = fail("sd_varlink_server_attach_event", r); goto out; }

        r = sd_event_loop(event);
        if (r < 0) { ret = fail("sd_event_loop", r); goto out; }
        ret = r;
out:
        if (argc == 2 && server)
                (void) unlink(argv[1]);
        sd_varlink_server_unref(server);
        sd_event_unref(event);
        sd_varlink_interface_free(iface);
        return ret;
}
