/* Relay: one direction of a media.Bridge, the C twin of its Python closures. */

#include "fastrtp.h"

/* ------------------------------------------------------------------------
 * Relay: one direction of a bridge
 */

typedef struct {
    PyObject_HEAD
    /* inbound side */
    PyObject *slow;          /* the leg's full receive path: slow(data, addr) */
    StatsObject *stats;      /* its statistics, updated in place */
    struct sockaddr_storage source; /* the latched peer: only its packets take the fast path */
    int has_source;
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

static int
relay_traverse(RelayObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->slow);
    Py_VISIT(self->stats);
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
    Py_CLEAR(self->stats);
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
        "slow", "stats", "source_target", "source_pt", "source_te", "peer_ssrc", "sender",
        "fd", "target", "sending", "out_pt", "out_te", "table", "channel", "restamp", NULL};
    PyObject *slow, *stats, *source_target, *source_te, *peer_ssrc;
    PyObject *sender, *target, *out_te, *table, *channel, *restamp;
    int source_pt, fd, sending, out_pt;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwds, "$OOOiOOOiOpiOOOO", kwlist, &slow, &stats, &source_target,
            &source_pt, &source_te, &peer_ssrc, &sender, &fd, &target, &sending, &out_pt,
            &out_te, &table, &channel, &restamp)) {
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
    self->has_source = 0;
    if (source_target != Py_None) {
        socklen_t length;
        if (parse_address(source_target, &self->source, &length) < 0) {
            return -1;
        }
        self->has_source = 1;
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
    self->stats = (StatsObject *)Py_NewRef(stats);
    self->sender = (SenderObject *)Py_NewRef(sender);
    self->restamp = Py_NewRef(restamp);
    return 0;
}

/* Append the arrival time and the packet to a recording channel's list. */
static int
record(PyObject *buffer, const unsigned char *p, Py_ssize_t length, double arrival, PyObject *data)
{
    PyObject *when = PyFloat_FromDouble(arrival);
    if (when == NULL) {
        return -1;
    }
    int status = PyList_Append(buffer, when);
    Py_DECREF(when);
    if (status < 0) {
        return -1;
    }
    if (data != NULL) {
        return PyList_Append(buffer, data);
    }
    PyObject *copy = PyBytes_FromStringAndSize((const char *)p, length);
    if (copy == NULL) {
        return -1;
    }
    status = PyList_Append(buffer, copy);
    Py_DECREF(copy);
    return status;
}

/* Re-stamp, map, transcode, record and send one packet; -1 with an exception set.
 * `data` is the packet as bytes when the caller has it, else NULL: it is made
 * only if the recording needs it. */
static int
relay_forward(
    RelayObject *self, const unsigned char *p, Py_ssize_t length, double arrival,
    PyObject *data)
{
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
            if (on && record(self->buffer, p, length, arrival, data) < 0) {
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

/* The common packet from the latched peer: statistics, then on; 1 when taken,
 * 0 when it must go to the leg's full path, -1 on an error (exception set). */
int
relay_take(
    PyObject *relay, const unsigned char *p, Py_ssize_t length, const struct sockaddr *from,
    double now)
{
    RelayObject *self = (RelayObject *)relay;
    if (!self->has_source || length < 12 || p[0] != 0x80 ||
        !same_address(from, (const struct sockaddr *)&self->source)) {
        return 0;
    }
    unsigned int ssrc = ((unsigned int)p[8] << 24) | ((unsigned int)p[9] << 16) |
                        ((unsigned int)p[10] << 8) | p[11];
    if ((int)(p[1] & 0x7F) != self->source_pt || !self->peer_ssrc_known ||
        ssrc != self->peer_ssrc) {
        return 0;
    }
    int seq = ((int)p[2] << 8) | p[3];
    unsigned int timestamp = ((unsigned int)p[4] << 24) | ((unsigned int)p[5] << 16) |
                             ((unsigned int)p[6] << 8) | p[7];
    stats_update(self->stats, seq, timestamp, now);
    return relay_forward(self, p, length, now, NULL) < 0 ? -1 : 1;
}

PyObject *
relay_slow(PyObject *relay)
{
    return ((RelayObject *)relay)->slow;
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
    double arrival = PyFloat_AsDouble(args[1]);
    if (arrival == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    if (relay_forward(self, p, PyBytes_GET_SIZE(args[0]), arrival, args[0]) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef relay_methods[] = {
    {"forward", (PyCFunction)(void (*)(void))relay_py_forward, METH_FASTCALL,
     "forward(data, arrival): re-stamp, map, transcode, record and send one packet."},
    {NULL}};

static PyMemberDef relay_members[] = {
    {"relayed", T_ULONGLONG, offsetof(RelayObject, relayed), READONLY,
     "Packets sent on by this direction."},
    {"send_errors", T_ULONGLONG, offsetof(RelayObject, send_errors), READONLY,
     "Packets the socket refused (full buffer, ICMP error)."},
    {NULL}};

PyTypeObject RelayType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "media._fastrtp.Relay",
    .tp_basicsize = sizeof(RelayObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One direction of a media.Bridge (media/bridge.py); a Port's handler.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)relay_tp_init,
    .tp_dealloc = (destructor)relay_dealloc,
    .tp_traverse = (traverseproc)relay_traverse,
    .tp_clear = (inquiry)relay_clear,
    .tp_methods = relay_methods,
    .tp_members = relay_members,
};
