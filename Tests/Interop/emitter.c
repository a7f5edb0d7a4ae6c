/*
 * sluice-c-emitter: an independent C peer for Sluice's framed link protocol
 * (docs/wire.md, "Frames" and "Frame types"), used by the interop tests.
 *
 * Usage: sluice-c-emitter HOST PORT APP COUNT
 *
 * Connects over TCP to HOST:PORT, sends HELLO (type 8, sequence 0, an 8-byte
 * big-endian random nonzero sender id), then COUNT Loggregator v2 log
 * envelopes for source id APP in ENVELOPES frames (type 1, sequence 1, 2,
 * 3..., at most 100 envelopes per EnvelopeBatch, packed with protobuf-c).
 * Envelope i has timestamp now_ns + i, instance id "7", tags
 * {source_type: C/EMITTER, lang: c}, log type ERR for odd i and OUT for even
 * i, and payload "c-line <i> " followed by the raw bytes 00 c3 a9.
 * It then reads frames until an ACK (type 7) with sequence >= the last
 * sequence sent arrives, and exits 0. Any error, or no such ACK within
 * 10 seconds, prints a message on stderr and exits 1.
 *
 * Build: see bin/build-interop (needs protoc-c output for
 * Protos/envelope.proto and -lprotobuf-c).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "envelope.pb-c.h"

#define HEADER_SIZE 16
#define FRAME_VERSION 1
#define TYPE_ENVELOPES 1
#define TYPE_ACK 7
#define TYPE_HELLO 8
#define BATCH_MAX 100
#define ACK_TIMEOUT_MS 10000
#define SEND_TIMEOUT_S 10
#define MAX_INBOUND_PAYLOAD (64u * 1024u * 1024u)

static void die(const char *fmt, ...)
{
    va_list ap;
    fputs("sluice-c-emitter: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int k = 0; k < 8; k++)
        p[k] = (uint8_t)(v >> (56 - 8 * k));
}

static uint32_t get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int k = 0; k < 8; k++)
        v = (v << 8) | p[k];
    return v;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        die("clock_gettime: %s", strerror(errno));
    return (int64_t)ts.tv_sec * 1000000000 + (int64_t)ts.tv_nsec;
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        die("clock_gettime: %s", strerror(errno));
    return (int64_t)ts.tv_sec * 1000 + (int64_t)(ts.tv_nsec / 1000000);
}

/* A random nonzero 64-bit sender id, from /dev/urandom. */
static uint64_t random_sender_id(void)
{
    uint64_t id = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) {
        uint8_t b[8];
        size_t got = 0;
        while (got < sizeof b) {
            ssize_t n = read(fd, b + got, sizeof b - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        close(fd);
        if (got == sizeof b)
            id = get_u64(b);
    }
    if (id == 0) {
        /* Fallback: mix the clock and the pid (splitmix64). */
        uint64_t z = (uint64_t)now_ns() ^ ((uint64_t)getpid() << 32);
        z += 0x9e3779b97f4a7c15ULL;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        id = z ^ (z >> 31);
    }
    return id == 0 ? 1 : id;
}

static int connect_to(const char *host, const char *port)
{
    struct addrinfo hints, *res = NULL, *ai;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        die("cannot resolve %s:%s: %s", host, port, gai_strerror(rc));
    int fd = -1, last_errno = 0;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        last_errno = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        die("cannot connect to %s:%s: %s", host, port, strerror(last_errno));
    /* A peer that stops reading must not block us forever. */
    struct timeval tv = { .tv_sec = SEND_TIMEOUT_S, .tv_usec = 0 };
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0)
        die("setsockopt(SO_SNDTIMEO): %s", strerror(errno));
    return fd;
}

/* Writes all of buf, handling partial writes; never raises SIGPIPE. */
static void write_all(int fd, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                die("write timed out: the peer stopped reading for %d s",
                    SEND_TIMEOUT_S);
            die("write failed: %s", strerror(errno));
        }
        buf += n;
        len -= (size_t)n;
    }
}

static void send_frame(int fd, uint8_t type, uint64_t sequence,
                       const uint8_t *payload, size_t len)
{
    if (len > UINT32_MAX)
        die("payload too large (%zu bytes)", len);
    uint8_t header[HEADER_SIZE];
    put_u32(header, (uint32_t)len);
    header[4] = FRAME_VERSION;
    header[5] = type;
    put_u16(header + 6, 0);
    put_u64(header + 8, sequence);
    write_all(fd, header, sizeof header);
    if (len > 0)
        write_all(fd, payload, len);
}

/*
 * Reads exactly len bytes before the monotonic deadline (ms), handling
 * partial reads; dies on error, end of stream or timeout.
 */
static void read_exact(int fd, uint8_t *buf, size_t len, int64_t deadline,
                       uint64_t want_seq)
{
    while (len > 0) {
        int64_t left = deadline - monotonic_ms();
        if (left <= 0)
            die("no ACK for sequence %" PRIu64 " within %d s", want_seq,
                ACK_TIMEOUT_MS / 1000);
        struct pollfd pfd = { .fd = fd, .events = POLLIN, .revents = 0 };
        int pr = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            die("poll failed: %s", strerror(errno));
        }
        if (pr == 0)
            continue; /* the deadline check above reports it */
        ssize_t n = recv(fd, buf, len, 0);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            die("read failed: %s", strerror(errno));
        }
        if (n == 0)
            die("connection closed before ACK for sequence %" PRIu64,
                want_seq);
        buf += n;
        len -= (size_t)n;
    }
}

static int parse_count(const char *s, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: sluice-c-emitter HOST PORT APP COUNT\n");
        return 1;
    }
    const char *host = argv[1], *port = argv[2], *app = argv[3];
    long long count;
    if (parse_count(argv[4], &count) != 0)
        die("COUNT must be a non-negative integer, got '%s'", argv[4]);

    int fd = connect_to(host, port);

    /* HELLO: sequence 0, the 8-byte sender id. */
    uint8_t hello[8];
    put_u64(hello, random_sender_id());
    send_frame(fd, TYPE_HELLO, 0, hello, sizeof hello);

    /* The tags are the same for every envelope: share them. */
    Loggregator__V2__Envelope__TagsEntry tag_source =
        LOGGREGATOR__V2__ENVELOPE__TAGS_ENTRY__INIT;
    Loggregator__V2__Envelope__TagsEntry tag_lang =
        LOGGREGATOR__V2__ENVELOPE__TAGS_ENTRY__INIT;
    tag_source.key = "source_type";
    tag_source.value = "C/EMITTER";
    tag_lang.key = "lang";
    tag_lang.value = "c";
    Loggregator__V2__Envelope__TagsEntry *tags[2] = { &tag_source, &tag_lang };

    static Loggregator__V2__Envelope envs[BATCH_MAX];
    static Loggregator__V2__Log logs[BATCH_MAX];
    static Loggregator__V2__Envelope *env_ptrs[BATCH_MAX];
    static uint8_t payloads[BATCH_MAX][48];
    static const uint8_t tail_bytes[3] = { 0x00, 0xC3, 0xA9 };

    int64_t base_ns = now_ns();
    uint64_t sequence = 0;
    long long i = 0;
    while (i < count) {
        size_t n = 0;
        for (; n < BATCH_MAX && i < count; n++, i++) {
            Loggregator__V2__Envelope env = LOGGREGATOR__V2__ENVELOPE__INIT;
            Loggregator__V2__Log log = LOGGREGATOR__V2__LOG__INIT;
            int text_len = snprintf((char *)payloads[n], sizeof payloads[n],
                                    "c-line %lld ", i);
            if (text_len < 0 ||
                (size_t)text_len + sizeof tail_bytes > sizeof payloads[n])
                die("payload formatting failed");
            memcpy(payloads[n] + text_len, tail_bytes, sizeof tail_bytes);
            log.payload.data = payloads[n];
            log.payload.len = (size_t)text_len + sizeof tail_bytes;
            log.type = (i % 2 == 1) ? LOGGREGATOR__V2__LOG__TYPE__ERR
                                    : LOGGREGATOR__V2__LOG__TYPE__OUT;
            logs[n] = log;

            env.timestamp = base_ns + (int64_t)i;
            env.source_id = (char *)app;
            env.instance_id = "7";
            env.n_tags = 2;
            env.tags = tags;
            env.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_LOG;
            env.log = &logs[n];
            envs[n] = env;
            env_ptrs[n] = &envs[n];
        }
        Loggregator__V2__EnvelopeBatch batch =
            LOGGREGATOR__V2__ENVELOPE_BATCH__INIT;
        batch.n_batch = n;
        batch.batch = env_ptrs;
        size_t size = loggregator__v2__envelope_batch__get_packed_size(&batch);
        uint8_t *buf = malloc(size > 0 ? size : 1);
        if (buf == NULL)
            die("out of memory");
        size_t packed = loggregator__v2__envelope_batch__pack(&batch, buf);
        if (packed != size)
            die("protobuf-c packed %zu bytes, expected %zu", packed, size);
        sequence++;
        send_frame(fd, TYPE_ENVELOPES, sequence, buf, size);
        free(buf);
    }

    /* Wait for an ACK covering the last ENVELOPES frame. */
    if (sequence > 0) {
        int64_t deadline = monotonic_ms() + ACK_TIMEOUT_MS;
        for (;;) {
            uint8_t header[HEADER_SIZE];
            read_exact(fd, header, sizeof header, deadline, sequence);
            uint32_t len = get_u32(header);
            uint8_t version = header[4], type = header[5];
            uint64_t seq = get_u64(header + 8);
            if (version != FRAME_VERSION)
                die("received a frame with version %u", (unsigned)version);
            if (len > MAX_INBOUND_PAYLOAD)
                die("received a frame with a %" PRIu32 "-byte payload", len);
            if (len > 0) {
                uint8_t *skip = malloc(len);
                if (skip == NULL)
                    die("out of memory");
                read_exact(fd, skip, len, deadline, sequence);
                free(skip);
            }
            if (type == TYPE_ACK) {
                if (len != 0)
                    die("received an ACK with a %" PRIu32 "-byte payload",
                        len);
                if (seq >= sequence)
                    break;
            }
            /* Any other frame (or an earlier ACK): keep reading. */
        }
    }

    if (close(fd) != 0)
        die("close failed: %s", strerror(errno));
    return 0;
}
