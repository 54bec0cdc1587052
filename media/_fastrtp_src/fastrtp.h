/*
 * media._fastrtp: what its C files share (see module.c for what the module is).
 */

#ifndef ACD_FASTRTP_H
#define ACD_FASTRTP_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define SEQ_MOD 65536

/* Attribute names, interned once (module.c). */
extern PyObject *str_active;
extern PyObject *str_ssrc;
extern PyObject *str_offset;

static inline double
monotonic_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
    PyObject_HEAD
    unsigned int ssrc;
    int clock_rate;
    int fraction_lost;
    int min_sequential;
    int max_dropout;
    int max_misorder;
    int started;
    int probation;
    int max_seq;
    long long cycles;
    int base_seq;
    int bad_seq;
    long long received;
    long long received_prior;
    long long expected_prior;
    int has_transit;
    double transit;
    double jitter;
    unsigned int lsr;
    double lsr_arrival;
} StatsObject;

extern PyTypeObject StatsType;

/* Account for one packet (RFC 3550 A.1, A.8); 1 when it belongs to a valid stream. */
int stats_update(StatsObject *s, int seq, unsigned int timestamp, double arrival);

typedef struct {
    PyObject_HEAD
    unsigned int ssrc;
    int clock_rate;
    unsigned int sequence_number;
    unsigned int timestamp;
    unsigned int packet_count;
    unsigned int octet_count;
} SenderObject;

extern PyTypeObject SenderType;

static inline void
put_header(
    unsigned char *out, unsigned int marker_pt, unsigned int seq, unsigned int ts,
    unsigned int ssrc)
{
    out[0] = 0x80;
    out[1] = (unsigned char)marker_pt;
    out[2] = (unsigned char)(seq >> 8);
    out[3] = (unsigned char)seq;
    out[4] = (unsigned char)(ts >> 24);
    out[5] = (unsigned char)(ts >> 16);
    out[6] = (unsigned char)(ts >> 8);
    out[7] = (unsigned char)ts;
    out[8] = (unsigned char)(ssrc >> 24);
    out[9] = (unsigned char)(ssrc >> 16);
    out[10] = (unsigned char)(ssrc >> 8);
    out[11] = (unsigned char)ssrc;
}

/* Where the payload of an RTP packet lies; 0 for a packet RtpPacket.parse refuses. */
static inline int
payload_bounds(const unsigned char *p, Py_ssize_t length, Py_ssize_t *start, Py_ssize_t *end)
{
    if (length < 12 || (p[0] >> 6) != 2) {
        return 0;
    }
    Py_ssize_t position = 12 + 4 * (p[0] & 0x0F);
    if (length < position) {
        return 0;
    }
    if (p[0] & 0x10) {
        if (length < position + 4) {
            return 0;
        }
        Py_ssize_t words = ((Py_ssize_t)p[position + 2] << 8) | p[position + 3];
        position += 4 + 4 * words;
        if (length < position) {
            return 0;
        }
    }
    Py_ssize_t stop = length;
    if (p[0] & 0x20) {
        Py_ssize_t padding = p[length - 1];
        if (padding == 0 || padding > length - position) {
            return 0;
        }
        stop = length - padding;
    }
    *start = position;
    *end = stop;
    return 1;
}

extern PyTypeObject RelayType;

/* A packet from `from` arrived at `now`: 1 if the relay took it (fast path), 0 if
 * it belongs on the leg's full path, -1 on an error (relay.c). */
int relay_take(
    PyObject *relay, const unsigned char *p, Py_ssize_t length, const struct sockaddr *from,
    double now);

/* The relay's full-path handler, slow(data, addr); borrowed (relay.c). */
PyObject *relay_slow(PyObject *relay);

extern PyTypeObject PortType;

/* Whether two socket addresses name the same host and port (IPv4 or IPv6). */
static inline int
same_address(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family) {
        return 0;
    }
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return 0;
}

/* place(items, table, origin, rate, tolerance, next_pos, next_ts) (place.c) */
PyObject *fast_place(PyObject *module, PyObject *args);

/* mix(written, upto, pendings, runs) (place.c) */
PyObject *fast_mix(PyObject *module, PyObject *args);

#endif
