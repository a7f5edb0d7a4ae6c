/*
 * sluice-c-tail: an independent websocket reader (libwebsockets 4.1) for
 * Sluice's /stream endpoint, used by the interop tests.
 *
 * Usage: sluice-c-tail HOST PORT PATH COUNT TIMEOUT_SECONDS
 *
 * Connects with ws:// (no TLS) to HOST:PORT PATH. Once the websocket is
 * established it prints "connected" on its own line. Every complete message
 * (binary or text, fragments reassembled) is then printed as one line of
 * lowercase hex of its bytes. After COUNT messages it exits 0. If
 * TIMEOUT_SECONDS pass first, or the connection fails or closes, it prints
 * the reason on stderr and exits 1. stdout is flushed after every line.
 *
 * Build: cc -O1 -Wall -Werror tail.c -lwebsockets (see bin/build-interop).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libwebsockets.h>

enum outcome { RUNNING = 0, DONE, FAILED };

static struct {
    long long want;          /* messages to read before exiting 0 */
    long long got;           /* complete messages printed so far */
    enum outcome outcome;
    char reason[256];        /* why it failed, for stderr */
    unsigned char *msg;      /* the message being reassembled */
    size_t msg_len, msg_cap;
    char *line;              /* hex line buffer */
    size_t line_cap;
    lws_sorted_usec_list_t timeout_sul;
    double timeout_s;
    int finished;            /* the connection is gone, or we gave up on it */
    lws_sorted_usec_list_t close_sul;
    struct lws_context *context;
} st;

/*
 * lws runs due timers before it waits in poll(), so a flag set from a timer
 * (or a callback) would not end lws_service() until the next socket event:
 * wake the event loop so main() sees the flag at once.
 */
static void wake(void)
{
    if (st.context != NULL)
        lws_cancel_service(st.context);
}

static void fail(const char *fmt, ...)
{
    if (st.outcome != RUNNING)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st.reason, sizeof st.reason, fmt, ap);
    va_end(ap);
    st.outcome = FAILED;
    wake();
}

static void on_timeout(lws_sorted_usec_list_t *sul)
{
    (void)sul;
    fail("timed out after %g s with %lld of %lld messages", st.timeout_s,
         st.got, st.want);
}

/* Stop waiting for the close handshake to finish. */
static void on_close_grace(lws_sorted_usec_list_t *sul)
{
    (void)sul;
    st.finished = 1;
    wake();
}

/*
 * All COUNT messages are in: close the websocket normally (lws sends a Close
 * frame when the callback returns -1), and give the handshake a moment.
 */
static int finish(struct lws *wsi)
{
    st.outcome = DONE;
    lws_sul_schedule(lws_get_context(wsi), 0, &st.close_sul, on_close_grace,
                     (lws_usec_t)1000000);
    lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
    return -1;
}

/* A backstop in case the event loop never returns (e.g. a hung resolver). */
static void on_alarm(int sig)
{
    (void)sig;
    static const char m[] = "sluice-c-tail: timed out (alarm)\n";
    ssize_t w = write(STDERR_FILENO, m, sizeof m - 1);
    (void)w;
    _exit(1);
}

static int append(const void *in, size_t len)
{
    if (len == 0)
        return 0;
    if (st.msg_len + len > st.msg_cap) {
        size_t cap = st.msg_cap ? st.msg_cap : 65536;
        while (cap < st.msg_len + len)
            cap *= 2;
        unsigned char *p = realloc(st.msg, cap);
        if (p == NULL)
            return -1;
        st.msg = p;
        st.msg_cap = cap;
    }
    memcpy(st.msg + st.msg_len, in, len);
    st.msg_len += len;
    return 0;
}

static int print_message(void)
{
    static const char digits[] = "0123456789abcdef";
    size_t need = st.msg_len * 2 + 2;
    if (need > st.line_cap) {
        char *p = realloc(st.line, need);
        if (p == NULL)
            return -1;
        st.line = p;
        st.line_cap = need;
    }
    for (size_t k = 0; k < st.msg_len; k++) {
        st.line[2 * k] = digits[st.msg[k] >> 4];
        st.line[2 * k + 1] = digits[st.msg[k] & 0x0f];
    }
    st.line[2 * st.msg_len] = '\n';
    size_t n = 2 * st.msg_len + 1;
    if (fwrite(st.line, 1, n, stdout) != n || fflush(stdout) != 0)
        return -1;
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len)
{
    (void)user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (in != NULL && len > 0)
            fail("connection failed: %.*s", (int)len, (const char *)in);
        else
            fail("connection failed");
        return -1;

    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        fputs("connected\n", stdout);
        fflush(stdout);
        if (st.want == 0)
            return finish(wsi);
        break;

    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (st.outcome != RUNNING)
            return -1;
        if (append(in, len) != 0) {
            fail("out of memory");
            return -1;
        }
        if (lws_is_final_fragment(wsi) &&
            lws_remaining_packet_payload(wsi) == 0) {
            if (print_message() != 0) {
                fail("cannot write to stdout: %s", strerror(errno));
                return -1;
            }
            st.msg_len = 0;
            st.got++;
            if (st.got >= st.want)
                return finish(wsi);
        }
        break;

    case LWS_CALLBACK_CLIENT_CLOSED:
        fail("connection closed by peer after %lld of %lld messages",
             st.got, st.want);
        break;

    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (len >= 2 && in != NULL) {
            const unsigned char *p = in;
            fail("peer closed the websocket (code %u) after %lld of %lld "
                 "messages",
                 (unsigned)((p[0] << 8) | p[1]), st.got, st.want);
        } else {
            fail("peer closed the websocket after %lld of %lld messages",
                 st.got, st.want);
        }
        break;

    case LWS_CALLBACK_WSI_DESTROY:
        st.finished = 1;
        wake();
        fail("connection closed after %lld of %lld messages", st.got,
             st.want);
        break;

    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    { "sluice-c-tail", callback, 0, 0, 0, NULL, 0 },
    { NULL, NULL, 0, 0, 0, NULL, 0 }
};

static int parse_ll(const char *s, long long min, long long max,
                    long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static void usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "sluice-c-tail: %s: '%s'\n", msg, arg);
    fprintf(stderr,
            "usage: sluice-c-tail HOST PORT PATH COUNT TIMEOUT_SECONDS\n");
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr,
                "usage: sluice-c-tail HOST PORT PATH COUNT TIMEOUT_SECONDS\n");
        return 1;
    }
    const char *host = argv[1], *path = argv[3];
    long long port;
    if (parse_ll(argv[2], 1, 65535, &port) != 0)
        usage_error("PORT must be 1-65535", argv[2]);
    if (parse_ll(argv[4], 0, LLONG_MAX, &st.want) != 0)
        usage_error("COUNT must be a non-negative integer", argv[4]);
    char *end = NULL;
    errno = 0;
    st.timeout_s = strtod(argv[5], &end);
    if (errno != 0 || end == argv[5] || *end != '\0' ||
        !(st.timeout_s > 0) || st.timeout_s > 86400.0 * 365)
        usage_error("TIMEOUT_SECONDS must be a positive number", argv[5]);
    if (path[0] != '/')
        usage_error("PATH must start with '/'", path);

    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    alarm((unsigned)st.timeout_s + 6);

    lws_set_log_level(LLL_ERR | LLL_WARN, NULL);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.gid = -1;
    info.uid = -1;
    struct lws_context *context = lws_create_context(&info);
    if (context == NULL) {
        fprintf(stderr, "sluice-c-tail: cannot create the lws context\n");
        return 1;
    }
    st.context = context;

    /* Host header: HOST:PORT, with brackets for an IPv6 literal. */
    char host_header[300];
    snprintf(host_header, sizeof host_header,
             strchr(host, ':') != NULL ? "[%s]:%lld" : "%s:%lld", host, port);

    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = context;
    ci.address = host;
    ci.port = (int)port;
    ci.path = path;
    ci.host = host_header;
    ci.origin = NULL;
    ci.protocol = NULL; /* no Sec-WebSocket-Protocol */
    ci.ietf_version_or_minus_one = -1;
    ci.ssl_connection = 0;

    lws_sul_schedule(context, 0, &st.timeout_sul, on_timeout,
                     (lws_usec_t)(st.timeout_s * 1e6));

    if (lws_client_connect_via_info(&ci) == NULL)
        fail("connection to %s:%lld failed", host, port);

    while (st.outcome == RUNNING || (st.outcome == DONE && !st.finished)) {
        if (lws_service(context, 0) < 0) {
            fail("lws_service failed");
            break;
        }
    }
    enum outcome outcome = st.outcome;
    lws_sul_cancel(&st.timeout_sul);
    lws_sul_cancel(&st.close_sul);
    st.context = NULL;
    lws_context_destroy(context);
    free(st.msg);
    free(st.line);

    if (outcome == DONE)
        return 0;
    fprintf(stderr, "sluice-c-tail: %s\n", st.reason);
    return 1;
}
