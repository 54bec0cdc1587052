/*
 * media._fastrtp: the per-packet work of the RTP path, in C.
 *
 * The media relay is the one cost that grows with every packet of every
 * call; in Python a relayed packet cost about 20 us of CPU (two closures,
 * the RFC 3550 statistics, struct packing, the transport's sendto), which
 * put the engine's ceiling at about 50 calls a second with media. This
 * module does the same work in about a microsecond plus the sendto system
 * call. It holds no state of its own and starts no thread: every object is
 * made, configured and dropped by the Python code that owns the stream
 * (media/_stats.py, media/bridge.py), on the event loop's thread, with the
 * GIL held throughout.
 *
 * Three types, each the C twin of a Python reference implementation that
 * stays in the tree as the fallback and as the specification the tests
 * compare this one against (tests/test_fastrtp.py):
 *
 *   ReceiverStatsCore  media._stats.PyReceiverStats: RFC 3550 A.1 sequence
 *                      validation, A.3 loss, A.8 jitter, bit for bit;
 *   SenderStateCore    media._stats.PySenderState: SSRC, sequence number,
 *                      timestamp and SR counts of an outgoing stream;
 *   Relay              media.bridge's Python closures for one direction:
 *                      receive() is the inbound socket's handler and takes
 *                      the common packet itself; forward() re-stamps,
 *                      maps the payload type, transcodes G.711 by table,
 *                      appends audio to the recording channel and sends.
 *
 * What the fast path does not take (another source, a new SSRC, a payload
 * type it was not built for, version or length trouble) goes to the leg's
 * full receive path in Python, exactly as the closures did.
 */

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

static PyObject *str_last_seen;
static PyObject *str_packets_received;
static PyObject *str_active;
static PyObject *str_ssrc;
static PyObject *str_offset;
static PyObject *one;

static double
monotonic_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Python's float %: the result takes the sign of the divisor. */
static double
py_fmod(double x, double y)
{
    double mod = fmod(x, y);
    if (mod != 0.0) {
        if ((y < 0) != (mod < 0)) {
            mod += y;
        }
    }
    else {
        mod = copysign(0.0, y);
    }
    return mod;
}

/* Python's //: rounds toward minus infinity. */
static long long
floor_div(long long a, long long b)
{
    long long q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) {
        q -= 1;
    }
    return q;
}

/* ------------------------------------------------------------------------
 * ReceiverStatsCore
 */

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

static PyTypeObject StatsType;

static void
stats_init_seq(StatsObject *s, int seq)
{
    s->base_seq = seq;
    s->max_seq = seq;
    s->bad_seq = SEQ_MOD + 1;
    s->cycles = 0;
    s->received = 0;
    s->received_prior = 0;
    s->expected_prior = 0;
    /* A restarted source has a new timestamp origin. */
    s->has_transit = 0;
}

/* RFC 3550 A.1 update_seq, with the probation wrap fixed (see _stats.py). */
static int
stats_update_seq(StatsObject *s, int seq)
{
    int udelta = (seq - s->max_seq) & 0xFFFF;
    if (s->probation) {
        if (seq == ((s->max_seq + 1) & 0xFFFF)) {
            s->probation -= 1;
            s->max_seq = seq;
            if (s->probation == 0) {
                stats_init_seq(s, seq);
                s->received += 1;
                return 1;
            }
        }
        else {
            s->probation = s->min_sequential - 1;
            s->max_seq = seq;
        }
        return 0;
    }
    if (udelta < s->max_dropout) {
        if (seq < s->max_seq) {
            s->cycles += SEQ_MOD;
        }
        s->max_seq = seq;
    }
    else if (udelta <= SEQ_MOD - s->max_misorder) {
        if (seq != s->bad_seq) {
            s->bad_seq = (seq + 1) & 0xFFFF;
            return 0;
        }
        stats_init_seq(s, seq);
    }
    s->received += 1;
    return 1;
}

static int
stats_update(StatsObject *s, int seq, unsigned int timestamp, double arrival)
{
    if (!s->started) {
        s->started = 1;
        stats_init_seq(s, seq);
        s->max_seq = (seq - 1) & 0xFFFF;
        s->probation = s->min_sequential;
    }
    int valid = stats_update_seq(s, seq);
    double transit = arrival * (double)s->clock_rate - (double)timestamp;
    if (valid && s->has_transit) {
        double delta = transit - s->transit;
        delta = py_fmod(delta + 2147483648.0, 4294967296.0) - 2147483648.0;
        s->jitter += (fabs(delta) - s->jitter) / 16.0;
    }
    s->transit = transit;
    s->has_transit = 1;
    return valid;
}

static int
stats_tp_init(StatsObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {
        "ssrc", "clock_rate", "min_sequential", "max_dropout", "max_misorder", NULL};
    unsigned long long ssrc;
    int clock_rate, min_sequential = 2, max_dropout = 3000, max_misorder = 100;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwds, "Ki|$iii", kwlist, &ssrc, &clock_rate, &min_sequential,
            &max_dropout, &max_misorder)) {
        return -1;
    }
    if (clock_rate <= 0) {
        PyErr_Format(PyExc_ValueError, "clock rate %d must be positive", clock_rate);
        return -1;
    }
    if (min_sequential < 1) {
        PyErr_Format(
            PyExc_ValueError, "min_sequential %d must be at least 1", min_sequential);
        return -1;
    }
    self->ssrc = (unsigned int)(ssrc & 0xFFFFFFFFu);
    self->clock_rate = clock_rate;
    self->fraction_lost = 0;
    self->min_sequential = min_sequential;
    self->max_dropout = max_dropout;
    self->max_misorder = max_misorder;
    self->started = 0;
    self->probation = min_sequential;
    self->max_seq = 0;
    self->cycles = 0;
    self->base_seq = 0;
    self->bad_seq = SEQ_MOD + 1;
    self->received = 0;
    self->received_prior = 0;
    self->expected_prior = 0;
    self->has_transit = 0;
    self->transit = 0.0;
    self->jitter = 0.0;
    self->lsr = 0;
    self->lsr_arrival = 0.0;
    return 0;
}

static PyObject *
stats_py_update(StatsObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "update(sequence_number, timestamp, arrival)");
        return NULL;
    }
    long seq = PyLong_AsLong(args[0]);
    if (seq == -1 && PyErr_Occurred()) {
        return NULL;
    }
    unsigned long timestamp = PyLong_AsUnsignedLongMask(args[1]);
    if (timestamp == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    double arrival = PyFloat_AsDouble(args[2]);
    if (arrival == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    int valid = stats_update(
        self, (int)(seq & 0xFFFF), (unsigned int)(timestamp & 0xFFFFFFFFu), arrival);
    return PyBool_FromLong(valid);
}

static int
stats_is_valid(StatsObject *s)
{
    return s->started && !s->probation;
}

static long long
stats_expected(StatsObject *s)
{
    if (!stats_is_valid(s)) {
        return 0;
    }
    return s->cycles + s->max_seq - s->base_seq + 1;
}

static PyObject *
stats_get_valid(StatsObject *self, void *closure)
{
    return PyBool_FromLong(stats_is_valid(self));
}

static PyObject *
stats_get_expected(StatsObject *self, void *closure)
{
    return PyLong_FromLongLong(stats_expected(self));
}

static PyObject *
stats_get_cumulative_lost(StatsObject *self, void *closure)
{
    return PyLong_FromLongLong(stats_expected(self) - self->received);
}

static PyObject *
stats_get_extended_highest(StatsObject *self, void *closure)
{
    return PyLong_FromLongLong(self->cycles + self->max_seq);
}

static PyObject *
stats_get_jitter_seconds(StatsObject *self, void *closure)
{
    return PyFloat_FromDouble(self->jitter / (double)self->clock_rate);
}

static PyObject *
stats_py_sender_report_received(StatsObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"ntp_timestamp", "arrival", NULL};
    unsigned long long ntp;
    double arrival;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Kd", kwlist, &ntp, &arrival)) {
        return NULL;
    }
    self->lsr = (unsigned int)((ntp >> 16) & 0xFFFFFFFFu);
    self->lsr_arrival = arrival;
    Py_RETURN_NONE;
}

/* The report block's fields, closing the interval (RFC 3550 A.3); None on probation.
 * (ssrc, fraction_lost, packets_lost, highest_sequence, jitter, lsr, dlsr) */
static PyObject *
stats_py_report(StatsObject *self, PyObject *arg)
{
    double now = PyFloat_AsDouble(arg);
    if (now == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    if (!stats_is_valid(self)) {
        Py_RETURN_NONE;
    }
    long long expected = stats_expected(self);
    long long expected_interval = expected - self->expected_prior;
    long long received_interval = self->received - self->received_prior;
    self->expected_prior = expected;
    self->received_prior = self->received;
    long long lost_interval = expected_interval - received_interval;
    if (expected_interval == 0 || lost_interval <= 0) {
        self->fraction_lost = 0;
    }
    else {
        self->fraction_lost = (int)floor_div(lost_interval << 8, expected_interval);
    }
    long long lost = expected - self->received;
    if (lost > 0x7FFFFF) {
        lost = 0x7FFFFF;
    }
    else if (lost < -0x800000) {
        lost = -0x800000;
    }
    long long dlsr = 0;
    if (self->lsr) {
        /* int() truncates toward zero, like the reference. */
        double value = trunc((now - self->lsr_arrival) * 65536.0);
        if (value < 0) {
            value = 0;
        }
        if (value > 4294967295.0) {
            value = 4294967295.0;
        }
        dlsr = (long long)value;
    }
    long long highest = (self->cycles + self->max_seq) & 0xFFFFFFFFLL;
    return Py_BuildValue(
        "(kiLLLkL)", (unsigned long)self->ssrc, self->fraction_lost, lost, highest,
        (long long)self->jitter, (unsigned long)self->lsr, dlsr);
}

static PyMethodDef stats_methods[] = {
    {"update", (PyCFunction)(void (*)(void))stats_py_update, METH_FASTCALL,
     "update(sequence_number, timestamp, arrival) -> bool: account for one packet."},
    {"sender_report_received",
     (PyCFunction)(void (*)(void))stats_py_sender_report_received,
     METH_VARARGS | METH_KEYWORDS,
     "Remember an SR from this source, for the LSR and DLSR of the next report."},
    {"_report", (PyCFunction)stats_py_report, METH_O,
     "The report block's fields as a tuple, closing the interval; None on probation."},
    {NULL}};

static PyMemberDef stats_members[] = {
    {"ssrc", T_UINT, offsetof(StatsObject, ssrc), 0, "The source's SSRC."},
    {"clock_rate", T_INT, offsetof(StatsObject, clock_rate), READONLY, "RTP clock rate."},
    {"fraction_lost", T_INT, offsetof(StatsObject, fraction_lost), READONLY,
     "Fraction lost (in 256ths) over the interval the last report block closed."},
    {"received", T_LONGLONG, offsetof(StatsObject, received), READONLY,
     "Packets counted since the source became valid (duplicates included)."},
    {"jitter", T_DOUBLE, offsetof(StatsObject, jitter), READONLY,
     "Interarrival jitter estimate in RTP timestamp units."},
    {NULL}};

static PyGetSetDef stats_getset[] = {
    {"valid", (getter)stats_get_valid, NULL, "Whether the source has passed probation."},
    {"expected", (getter)stats_get_expected, NULL, "Packets expected since valid."},
    {"cumulative_lost", (getter)stats_get_cumulative_lost, NULL,
     "Expected minus received; negative when duplicates outnumber losses."},
    {"extended_highest_sequence", (getter)stats_get_extended_highest, NULL,
     "Highest sequence number seen, with the count of wraps in the upper 16 bits."},
    {"jitter_seconds", (getter)stats_get_jitter_seconds, NULL,
     "Interarrival jitter estimate in seconds."},
    {NULL}};

static PyTypeObject StatsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "media._fastrtp.ReceiverStatsCore",
    .tp_basicsize = sizeof(StatsObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "RFC 3550 reception statistics of one SSRC (media._stats.ReceiverStats).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)stats_tp_init,
    .tp_methods = stats_methods,
    .tp_members = stats_members,
    .tp_getset = stats_getset,
};

/* ------------------------------------------------------------------------
 * SenderStateCore
 */

typedef struct {
    PyObject_HEAD
    unsigned int ssrc;
    int clock_rate;
    unsigned int sequence_number;
    unsigned int timestamp;
    unsigned int packet_count;
    unsigned int octet_count;
} SenderObject;

static PyTypeObject SenderType;

static int
sender_tp_init(SenderObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"clock_rate", NULL};
    int clock_rate;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i", kwlist, &clock_rate)) {
        return -1;
    }
    if (clock_rate <= 0) {
        PyErr_Format(PyExc_ValueError, "clock rate %d must be positive", clock_rate);
        return -1;
    }
    self->clock_rate = clock_rate;
    return 0;
}

static void
sender_advance(SenderObject *s, Py_ssize_t octets, unsigned long long samples)
{
    s->sequence_number = (s->sequence_number + 1) & 0xFFFF;
    s->timestamp = (unsigned int)((s->timestamp + samples) & 0xFFFFFFFFu);
    s->packet_count = s->packet_count + 1;
    s->octet_count = (unsigned int)(s->octet_count + (unsigned long long)octets);
}

static void
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

/* build(payload, payload_type, samples, *, marker=False) -> bytes */
static PyObject *
sender_py_build(SenderObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"payload", "payload_type", "samples", "marker", NULL};
    Py_buffer payload;
    int payload_type;
    unsigned long long samples;
    int marker = 0;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwds, "y*iK|$p", kwlist, &payload, &payload_type, &samples, &marker)) {
        return NULL;
    }
    if (payload_type < 0 || payload_type > 127) {
        PyBuffer_Release(&payload);
        PyErr_Format(
            PyExc_ValueError, "RTP payload type %d is outside 0-127", payload_type);
        return NULL;
    }
    PyObject *data = PyBytes_FromStringAndSize(NULL, 12 + payload.len);
    if (data == NULL) {
        PyBuffer_Release(&payload);
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(data);
    put_header(
        out, (marker ? 0x80u : 0u) | (unsigned int)payload_type, self->sequence_number,
        self->timestamp, self->ssrc);
    memcpy(out + 12, payload.buf, (size_t)payload.len);
    sender_advance(self, payload.len, samples);
    PyBuffer_Release(&payload);
    return data;
}

static PyObject *
sender_py_skip(SenderObject *self, PyObject *arg)
{
    unsigned long long samples = PyLong_AsUnsignedLongLongMask(arg);
    if (samples == (unsigned long long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    self->timestamp = (unsigned int)((self->timestamp + samples) & 0xFFFFFFFFu);
    Py_RETURN_NONE;
}

static PyObject *
sender_py_advance(SenderObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_advance(octets, samples)");
        return NULL;
    }
    Py_ssize_t octets = PyLong_AsSsize_t(args[0]);
    if (octets == -1 && PyErr_Occurred()) {
        return NULL;
    }
    unsigned long long samples = PyLong_AsUnsignedLongLongMask(args[1]);
    if (samples == (unsigned long long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    sender_advance(self, octets, samples);
    Py_RETURN_NONE;
}

static PyMethodDef sender_methods[] = {
    {"build", (PyCFunction)(void (*)(void))sender_py_build, METH_VARARGS | METH_KEYWORDS,
     "The next packet's bytes, then advance by one packet and samples."},
    {"skip", (PyCFunction)sender_py_skip, METH_O,
     "Advance the timestamp without sending."},
    {"_advance", (PyCFunction)(void (*)(void))sender_py_advance, METH_FASTCALL,
     "Advance by one packet of octets and samples."},
    {NULL}};

static PyMemberDef sender_members[] = {
    {"ssrc", T_UINT, offsetof(SenderObject, ssrc), 0, "The stream's SSRC."},
    {"clock_rate", T_INT, offsetof(SenderObject, clock_rate), READONLY, "RTP clock rate."},
    {"sequence_number", T_UINT, offsetof(SenderObject, sequence_number), 0,
     "The next packet's sequence number."},
    {"timestamp", T_UINT, offsetof(SenderObject, timestamp), 0,
     "The next packet's timestamp."},
    {"packet_count", T_UINT, offsetof(SenderObject, packet_count), 0,
     "Packets sent, mod 2**32 (RFC 3550 6.4.1)."},
    {"octet_count", T_UINT, offsetof(SenderObject, octet_count), 0,
     "Payload octets sent, mod 2**32."},
    {NULL}};

static PyTypeObject SenderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "media._fastrtp.SenderStateCore",
    .tp_basicsize = sizeof(SenderObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "An outgoing RTP stream's numbering (media._stats.SenderState).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)sender_tp_init,
    .tp_methods = sender_methods,
    .tp_members = sender_members,
};

/* ------------------------------------------------------------------------
 * Relay: one direction of a bridge
 */

typedef struct {
    PyObject_HEAD
    /* inbound side */
    PyObject *slow;          /* the leg's full receive path: slow(data, addr) */
    PyObject *leg;           /* the source RtpLeg, for packets_received */
    PyObject *media_clock;   /* its MediaTimeout, for last_seen */
    StatsObject *stats;      /* its statistics, updated in place */
    PyObject *source_host;   /* the latched peer's address, or NULL: no fast path */
    long source_port;
    int source_pt;
    int source_te;           /* -1: no telephone-event */
    int peer_ssrc_known;
    unsigned int peer_ssrc;
    /* outbound side */
    SenderObject *sender;
    int fd;                  /* the destination leg's RTP socket */
    int sending;
    struct sockaddr_storage target;
    socklen_t target_len;
    int out_pt;
    int out_te;              /* -1: events are not forwarded */
    unsigned char table[256];
    int transcode;
    PyObject *channel;       /* RecordingChannel or NULL */
    PyObject *buffer;        /* its list */
    PyObject *restamp;       /* the _Restamp kept across rebuilds */
    int restamp_known;
    unsigned int restamp_ssrc;
    unsigned int restamp_offset;
    /* counters */
    unsigned long long relayed;
    unsigned long long send_errors;
} RelayObject;

static PyTypeObject RelayType;

static int
relay_traverse(RelayObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->slow);
    Py_VISIT(self->leg);
    Py_VISIT(self->media_clock);
    Py_VISIT(self->stats);
    Py_VISIT(self->source_host);
    Py_VISIT(self->sender);
    Py_VISIT(self->channel);
    Py_VISIT(self->buffer);
    Py_VISIT(self->restamp);
    return 0;
}

static int
relay_clear(RelayObject *self)
{
    Py_CLEAR(self->slow);
    Py_CLEAR(self->leg);
    Py_CLEAR(self->media_clock);
    Py_CLEAR(self->stats);
    Py_CLEAR(self->source_host);
    Py_CLEAR(self->sender);
    Py_CLEAR(self->channel);
    Py_CLEAR(self->buffer);
    Py_CLEAR(self->restamp);
    return 0;
}

static void
relay_dealloc(RelayObject *self)
{
    PyObject_GC_UnTrack(self);
    relay_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* (host, port) -> sockaddr; 0 on success, -1 with ValueError. */
static int
parse_address(PyObject *address, struct sockaddr_storage *out, socklen_t *len)
{
    if (!PyTuple_Check(address) || PyTuple_GET_SIZE(address) < 2) {
        PyErr_SetString(PyExc_ValueError, "an address is a (host, port) tuple");
        return -1;
    }
    const char *host = PyUnicode_AsUTF8(PyTuple_GET_ITEM(address, 0));
    if (host == NULL) {
        return -1;
    }
    long port = PyLong_AsLong(PyTuple_GET_ITEM(address, 1));
    if (port == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (port < 0 || port > 65535) {
        PyErr_Format(PyExc_ValueError, "port %ld is outside 0-65535", port);
        return -1;
    }
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof(*v4);
        return 0;
    }
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*v6);
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "%s is not a numeric IP address", host);
    return -1;
}

static int
optional_int(PyObject *value, int none_value, int *out)
{
    if (value == Py_None) {
        *out = none_value;
        return 0;
    }
    long v = PyLong_AsLong(value);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int
relay_tp_init(RelayObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {
        "slow", "leg", "media_clock", "stats", "source_target", "source_pt", "source_te",
        "peer_ssrc", "sender", "fd", "target", "sending", "out_pt", "out_te", "table",
        "channel", "restamp", NULL};
    PyObject *slow, *leg, *media_clock, *stats, *source_target, *source_te, *peer_ssrc;
    PyObject *sender, *target, *out_te, *table, *channel, *restamp;
    int source_pt, fd, sending, out_pt;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwds, "$OOOOOiOOOiOpiOOOO", kwlist, &slow, &leg, &media_clock, &stats,
            &source_target, &source_pt, &source_te, &peer_ssrc, &sender, &fd, &target,
            &sending, &out_pt, &out_te, &table, &channel, &restamp)) {
        return -1;
    }
    if (!PyObject_TypeCheck(stats, &StatsType)) {
        PyErr_SetString(PyExc_TypeError, "stats must be a ReceiverStatsCore");
        return -1;
    }
    if (!PyObject_TypeCheck(sender, &SenderType)) {
        PyErr_SetString(PyExc_TypeError, "sender must be a SenderStateCore");
        return -1;
    }
    if (!PyCallable_Check(slow)) {
        PyErr_SetString(PyExc_TypeError, "slow must be callable");
        return -1;
    }
    relay_clear(self);
    self->source_host = NULL;
    if (source_target != Py_None) {
        if (!PyTuple_Check(source_target) || PyTuple_GET_SIZE(source_target) < 2 ||
            !PyUnicode_Check(PyTuple_GET_ITEM(source_target, 0))) {
            PyErr_SetString(PyExc_ValueError, "source_target is a (host, port) tuple");
            return -1;
        }
        self->source_port = PyLong_AsLong(PyTuple_GET_ITEM(source_target, 1));
        if (self->source_port == -1 && PyErr_Occurred()) {
            return -1;
        }
        self->source_host = Py_NewRef(PyTuple_GET_ITEM(source_target, 0));
    }
    self->source_pt = source_pt;
    if (optional_int(source_te, -1, &self->source_te) < 0 ||
        optional_int(out_te, -1, &self->out_te) < 0) {
        return -1;
    }
    self->peer_ssrc_known = peer_ssrc != Py_None;
    if (self->peer_ssrc_known) {
        self->peer_ssrc = (unsigned int)PyLong_AsUnsignedLongMask(peer_ssrc);
        if (PyErr_Occurred()) {
            return -1;
        }
    }
    self->target_len = 0;
    if (target != Py_None && parse_address(target, &self->target, &self->target_len) < 0) {
        return -1;
    }
    self->fd = fd;
    self->sending = sending && fd >= 0 && self->target_len > 0;
    self->out_pt = out_pt;
    self->transcode = 0;
    if (table != Py_None) {
        if (!PyBytes_Check(table) || PyBytes_GET_SIZE(table) != 256) {
            PyErr_SetString(PyExc_ValueError, "table must be 256 bytes or None");
            return -1;
        }
        memcpy(self->table, PyBytes_AS_STRING(table), 256);
        self->transcode = 1;
    }
    if (channel != Py_None) {
        PyObject *buffer = PyObject_GetAttrString(channel, "buffer");
        if (buffer == NULL) {
            return -1;
        }
        if (!PyList_Check(buffer)) {
            Py_DECREF(buffer);
            PyErr_SetString(PyExc_TypeError, "channel.buffer must be a list");
            return -1;
        }
        self->channel = Py_NewRef(channel);
        self->buffer = buffer;
    }
    /* The restamp state lives on across rebuilds in the Python object. */
    PyObject *rs = PyObject_GetAttr(restamp, str_ssrc);
    if (rs == NULL) {
        return -1;
    }
    self->restamp_known = rs != Py_None;
    if (self->restamp_known) {
        self->restamp_ssrc = (unsigned int)PyLong_AsUnsignedLongMask(rs);
    }
    Py_DECREF(rs);
    PyObject *ro = PyObject_GetAttr(restamp, str_offset);
    if (ro == NULL) {
        return -1;
    }
    self->restamp_offset = (unsigned int)PyLong_AsUnsignedLongMask(ro);
    Py_DECREF(ro);
    if (PyErr_Occurred()) {
        return -1;
    }
    self->slow = Py_NewRef(slow);
    self->leg = Py_NewRef(leg);
    self->media_clock = Py_NewRef(media_clock);
    self->stats = (StatsObject *)Py_NewRef(stats);
    self->sender = (SenderObject *)Py_NewRef(sender);
    self->restamp = Py_NewRef(restamp);
    return 0;
}

/* Where the payload of an RTP packet lies; 0 for a packet RtpPacket.parse refuses. */
static int
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

static int
relay_forward(RelayObject *self, PyObject *data, PyObject *arrival)
{
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t length = PyBytes_GET_SIZE(data);
    Py_ssize_t start, end;
    if (length >= 12 && p[0] == 0x80) {
        start = 12;
        end = length;
    }
    else if (!payload_bounds(p, length, &start, &end)) {
        return 0;
    }
    unsigned int second = p[1];
    unsigned int pt = second & 0x7F;
    unsigned int timestamp = ((unsigned int)p[4] << 24) | ((unsigned int)p[5] << 16) |
                             ((unsigned int)p[6] << 8) | p[7];
    unsigned int ssrc = ((unsigned int)p[8] << 24) | ((unsigned int)p[9] << 16) |
                        ((unsigned int)p[10] << 8) | p[11];
    unsigned int out_pt;
    unsigned long long samples;
    int translate;
    if ((int)pt == self->source_pt) {
        if (self->channel != NULL) {
            PyObject *active = PyObject_GetAttr(self->channel, str_active);
            if (active == NULL) {
                return -1;
            }
            int on = PyObject_IsTrue(active);
            Py_DECREF(active);
            if (on < 0) {
                return -1;
            }
            if (on && (PyList_Append(self->buffer, arrival) < 0 ||
                       PyList_Append(self->buffer, data) < 0)) {
                return -1;
            }
        }
        out_pt = (unsigned int)self->out_pt;
        samples = (unsigned long long)(end - start);
        translate = self->transcode;
    }
    else if ((int)pt == self->source_te && self->out_te >= 0) {
        out_pt = (unsigned int)self->out_te;
        samples = 0; /* every packet of an event carries the event's start time */
        translate = 0;
    }
    else {
        return 0;
    }
    if (!self->sending) {
        return 0;
    }
    unsigned int marker = second & 0x80;
    if (!self->restamp_known || ssrc != self->restamp_ssrc) {
        /* A new inbound stream: continue from where the outbound one left off. */
        self->restamp_known = 1;
        self->restamp_ssrc = ssrc;
        self->restamp_offset = self->sender->timestamp - timestamp;
        marker = 0x80;
        PyObject *value = PyLong_FromUnsignedLong(ssrc);
        if (value == NULL || PyObject_SetAttr(self->restamp, str_ssrc, value) < 0) {
            Py_XDECREF(value);
            return -1;
        }
        Py_DECREF(value);
        value = PyLong_FromUnsignedLong(self->restamp_offset);
        if (value == NULL || PyObject_SetAttr(self->restamp, str_offset, value) < 0) {
            Py_XDECREF(value);
            return -1;
        }
        Py_DECREF(value);
    }
    unsigned int out_ts = timestamp + self->restamp_offset;
    Py_ssize_t size = end - start;
    unsigned char stack[2048];
    unsigned char *packet = stack;
    if (12 + size > (Py_ssize_t)sizeof(stack)) {
        packet = PyMem_Malloc((size_t)(12 + size));
        if (packet == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    SenderObject *sender = self->sender;
    put_header(packet, marker | out_pt, sender->sequence_number, out_ts, sender->ssrc);
    if (translate) {
        const unsigned char *table = self->table;
        const unsigned char *in = p + start;
        unsigned char *out = packet + 12;
        for (Py_ssize_t i = 0; i < size; i++) {
            out[i] = table[in[i]];
        }
    }
    else {
        memcpy(packet + 12, p + start, (size_t)size);
    }
    ssize_t sent = sendto(
        self->fd, packet, (size_t)(12 + size), 0, (struct sockaddr *)&self->target,
        self->target_len);
    if (packet != stack) {
        PyMem_Free(packet);
    }
    if (sent < 0) {
        /* A full buffer or a peer's ICMP: a lost datagram, as UDP allows. */
        self->send_errors += 1;
    }
    sender->sequence_number = (sender->sequence_number + 1) & 0xFFFF;
    if (samples) {
        sender->timestamp = (unsigned int)((out_ts + samples) & 0xFFFFFFFFu);
    }
    sender->packet_count += 1;
    sender->octet_count += (unsigned int)size;
    self->relayed += 1;
    return 0;
}

static PyObject *
call_slow(RelayObject *self, PyObject *data, PyObject *addr)
{
    PyObject *args[2] = {data, addr};
    return PyObject_Vectorcall(self->slow, args, 2, NULL);
}

static int
same_host(PyObject *a, PyObject *b)
{
    if (a == b) {
        return 1;
    }
    if (!PyUnicode_Check(a)) {
        return 0;
    }
    int cmp = PyUnicode_Compare(a, b);
    if (cmp == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return cmp == 0;
}

/* receive(data, addr): the inbound socket's handler. */
static PyObject *
relay_py_receive(RelayObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "receive(data, addr)");
        return NULL;
    }
    PyObject *data = args[0];
    PyObject *addr = args[1];
    if (self->source_host == NULL || !PyBytes_CheckExact(data) || !PyTuple_Check(addr) ||
        PyTuple_GET_SIZE(addr) < 2) {
        return call_slow(self, data, addr);
    }
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t length = PyBytes_GET_SIZE(data);
    if (length < 12 || p[0] != 0x80) {
        return call_slow(self, data, addr);
    }
    PyObject *port = PyTuple_GET_ITEM(addr, 1);
    if (!PyLong_Check(port) || PyLong_AsLong(port) != self->source_port ||
        !same_host(PyTuple_GET_ITEM(addr, 0), self->source_host)) {
        PyErr_Clear();
        return call_slow(self, data, addr);
    }
    unsigned int ssrc = ((unsigned int)p[8] << 24) | ((unsigned int)p[9] << 16) |
                        ((unsigned int)p[10] << 8) | p[11];
    if ((int)(p[1] & 0x7F) != self->source_pt || !self->peer_ssrc_known ||
        ssrc != self->peer_ssrc) {
        return call_slow(self, data, addr);
    }
    int seq = ((int)p[2] << 8) | p[3];
    unsigned int timestamp = ((unsigned int)p[4] << 24) | ((unsigned int)p[5] << 16) |
                             ((unsigned int)p[6] << 8) | p[7];
    double now = monotonic_now();
    stats_update(self->stats, seq, timestamp, now);
    PyObject *arrival = PyFloat_FromDouble(now);
    if (arrival == NULL) {
        return NULL;
    }
    if (PyObject_SetAttr(self->media_clock, str_last_seen, arrival) < 0) {
        Py_DECREF(arrival);
        return NULL;
    }
    PyObject *count = PyObject_GetAttr(self->leg, str_packets_received);
    if (count == NULL) {
        Py_DECREF(arrival);
        return NULL;
    }
    PyObject *more = PyNumber_Add(count, one);
    Py_DECREF(count);
    if (more == NULL || PyObject_SetAttr(self->leg, str_packets_received, more) < 0) {
        Py_XDECREF(more);
        Py_DECREF(arrival);
        return NULL;
    }
    Py_DECREF(more);
    int status = relay_forward(self, data, arrival);
    Py_DECREF(arrival);
    if (status < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* forward(data, arrival): a packet the leg's full path accepted. */
static PyObject *
relay_py_forward(RelayObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "forward(data, arrival)");
        return NULL;
    }
    if (!PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "data must be bytes");
        return NULL;
    }
    if (relay_forward(self, args[0], args[1]) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef relay_methods[] = {
    {"receive", (PyCFunction)(void (*)(void))relay_py_receive, METH_FASTCALL,
     "receive(data, addr): the inbound socket's handler; takes the common packet itself."},
    {"forward", (PyCFunction)(void (*)(void))relay_py_forward, METH_FASTCALL,
     "forward(data, arrival): re-stamp, map, transcode, record and send one packet."},
    {NULL}};

static PyMemberDef relay_members[] = {
    {"relayed", T_ULONGLONG, offsetof(RelayObject, relayed), READONLY,
     "Packets sent on by this direction."},
    {"send_errors", T_ULONGLONG, offsetof(RelayObject, send_errors), READONLY,
     "Packets the socket refused (full buffer, ICMP error)."},
    {NULL}};

static PyTypeObject RelayType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "media._fastrtp.Relay",
    .tp_basicsize = sizeof(RelayObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One direction of a media.Bridge: see media/bridge.py.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)relay_tp_init,
    .tp_dealloc = (destructor)relay_dealloc,
    .tp_traverse = (traverseproc)relay_traverse,
    .tp_clear = (inquiry)relay_clear,
    .tp_methods = relay_methods,
    .tp_members = relay_members,
};

/* ------------------------------------------------------------------------
 * place(): the recorder's placement of packets on its timeline
 *
 * media._wavwriter.WavTimeline._runs in C, for the recorders' writer thread:
 * for one channel's batch [arrival, packet, arrival, packet, ...] it decides
 * where each packet's samples go (by RTP timestamp, unless that is more than
 * `tolerance` samples from its arrival), decodes G.711 with the codec's
 * 256-entry table and returns the runs of contiguous samples.
 */

static int
append_run(PyObject *runs, long long start, const int16_t *samples, Py_ssize_t count)
{
    PyObject *pcm = PyBytes_FromStringAndSize((const char *)samples, count * 2);
    if (pcm == NULL) {
        return -1;
    }
    PyObject *run = Py_BuildValue("(LN)", start, pcm);
    if (run == NULL) {
        return -1;
    }
    int status = PyList_Append(runs, run);
    Py_DECREF(run);
    return status;
}

/* place(items, table, origin, rate, tolerance, next_pos, next_ts)
 *   -> (runs, next_pos, next_ts); runs is [(start, native int16 bytes), ...] */
static PyObject *
fast_place(PyObject *module, PyObject *args)
{
    PyObject *items, *next_pos_obj;
    Py_buffer table;
    double origin;
    int rate;
    long long tolerance;
    unsigned long long next_ts_arg;
    if (!PyArg_ParseTuple(
            args, "O!y*diLOK", &PyList_Type, &items, &table, &origin, &rate, &tolerance,
            &next_pos_obj, &next_ts_arg)) {
        return NULL;
    }
    if (table.len != 512) {
        PyBuffer_Release(&table);
        PyErr_SetString(PyExc_ValueError, "table must be 256 native int16 samples");
        return NULL;
    }
    int16_t decode[256];
    memcpy(decode, table.buf, sizeof(decode));
    PyBuffer_Release(&table);
    int have_next = next_pos_obj != Py_None;
    long long next_pos = 0;
    if (have_next) {
        next_pos = PyLong_AsLongLong(next_pos_obj);
        if (next_pos == -1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    unsigned int next_ts = (unsigned int)(next_ts_arg & 0xFFFFFFFFu);
    PyObject *runs = PyList_New(0);
    if (runs == NULL) {
        return NULL;
    }
    Py_ssize_t capacity = 4096, count = 0;
    int16_t *buffer = PyMem_Malloc((size_t)capacity * sizeof(int16_t));
    if (buffer == NULL) {
        Py_DECREF(runs);
        return PyErr_NoMemory();
    }
    int in_run = 0;
    long long run_start = 0, run_end = 0;
    Py_ssize_t n = PyList_GET_SIZE(items);
    for (Py_ssize_t i = 0; i + 1 < n; i += 2) {
        double arrival = PyFloat_AsDouble(PyList_GET_ITEM(items, i));
        if (arrival == -1.0 && PyErr_Occurred()) {
            goto error;
        }
        PyObject *data = PyList_GET_ITEM(items, i + 1);
        if (!PyBytes_Check(data)) {
            PyErr_SetString(PyExc_TypeError, "a recorded packet must be bytes");
            goto error;
        }
        const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(data);
        Py_ssize_t length = PyBytes_GET_SIZE(data), start, end;
        if (length >= 12 && p[0] == 0x80) {
            start = 12;
            end = length;
        }
        else if (!payload_bounds(p, length, &start, &end)) {
            continue;
        }
        unsigned int timestamp = ((unsigned int)p[4] << 24) | ((unsigned int)p[5] << 16) |
                                 ((unsigned int)p[6] << 8) | p[7];
        long long heard = llrint((arrival - origin) * (double)rate);
        long long position;
        if (!have_next) {
            position = heard;
        }
        else {
            /* The signed 32-bit distance, wrap included. */
            long long step = (long long)(int32_t)(timestamp - next_ts);
            position = next_pos + step;
            if (!(-tolerance <= position - heard && position - heard <= tolerance)) {
                position = heard;
            }
        }
        if (position != run_end || !in_run) {
            if (in_run && append_run(runs, run_start, buffer, count) < 0) {
                goto error;
            }
            count = 0;
            in_run = 1;
            run_start = run_end = position;
        }
        Py_ssize_t size = end - start;
        if (count + size > capacity) {
            while (count + size > capacity) {
                capacity *= 2;
            }
            int16_t *grown = PyMem_Realloc(buffer, (size_t)capacity * sizeof(int16_t));
            if (grown == NULL) {
                PyErr_NoMemory();
                goto error;
            }
            buffer = grown;
        }
        for (Py_ssize_t k = 0; k < size; k++) {
            buffer[count + k] = decode[p[start + k]];
        }
        count += size;
        run_end += size;
        have_next = 1;
        next_pos = run_end;
        next_ts = (unsigned int)(timestamp + (unsigned int)size);
    }
    if (in_run && append_run(runs, run_start, buffer, count) < 0) {
        goto error;
    }
    PyMem_Free(buffer);
    if (!have_next) {
        return Py_BuildValue("(NOk)", runs, Py_None, (unsigned long)next_ts);
    }
    return Py_BuildValue("(NLk)", runs, next_pos, (unsigned long)next_ts);
error:
    PyMem_Free(buffer);
    Py_DECREF(runs);
    return NULL;
}

static PyMethodDef fastrtp_functions[] = {
    {"place", fast_place, METH_VARARGS,
     "place(items, table, origin, rate, tolerance, next_pos, next_ts) -> (runs, next_pos, "
     "next_ts): WavTimeline._runs for one channel's batch."},
    {NULL}};

/* ------------------------------------------------------------------------
 * module
 */

static PyModuleDef fastrtp_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "media._fastrtp",
    .m_doc = "The per-packet work of the RTP path in C (see media/_fastrtp.c).",
    .m_size = -1,
    .m_methods = fastrtp_functions,
};

PyMODINIT_FUNC
PyInit__fastrtp(void)
{
    str_last_seen = PyUnicode_InternFromString("last_seen");
    str_packets_received = PyUnicode_InternFromString("packets_received");
    str_active = PyUnicode_InternFromString("active");
    str_ssrc = PyUnicode_InternFromString("ssrc");
    str_offset = PyUnicode_InternFromString("offset");
    one = PyLong_FromLong(1);
    if (!str_last_seen || !str_packets_received || !str_active || !str_ssrc ||
        !str_offset || !one) {
        return NULL;
    }
    if (PyType_Ready(&StatsType) < 0 || PyType_Ready(&SenderType) < 0 ||
        PyType_Ready(&RelayType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&fastrtp_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "ReceiverStatsCore", (PyObject *)&StatsType) < 0 ||
        PyModule_AddObjectRef(module, "SenderStateCore", (PyObject *)&SenderType) < 0 ||
        PyModule_AddObjectRef(module, "Relay", (PyObject *)&RelayType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
