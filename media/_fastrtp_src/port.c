/* Port: one UDP socket of an RTP leg, read in C when the event loop says it is readable.
 *
 * The leg registers port.readable with loop.add_reader(fd, ...). Each call
 * reads the datagrams waiting (recvmmsg, up to a batch, so one busy socket
 * cannot hold the loop) and hands each to the port's handler:
 *
 *   a Relay:   its fast path takes the common packet from the latched peer
 *              with no Python object made (relay_take); anything else goes
 *              to the relay's full-path handler as (bytes, (host, port));
 *   a callable: called with (bytes, (host, port)), as a datagram protocol's
 *              datagram_received would be;
 *   None:      the datagram is read and dropped.
 *
 * Compared with an asyncio datagram transport this saves, per packet, the
 * bytes object, the address tuple and its host string (uvloop formats it
 * with inet_ntop and snprintf), and the Python call. The port also counts
 * the packets its fast path took and when the last one came, which the leg
 * folds into its own counters and media clock when they are read.
 */

#include "fastrtp.h"

#define BATCH 64
#define VECTOR 8 /* datagrams per recvmmsg */
#define DATAGRAM 4096 /* RTP over UDP from a phone: far below; larger is dropped */

typedef struct {
    PyObject_HEAD
    int fd;
    PyObject *handler;
    unsigned long long fast_packets;
    unsigned long long dropped;
    double last_arrival;
} PortObject;

static int
port_traverse(PortObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->handler);
    return 0;
}

static int
port_clear(PortObject *self)
{
    Py_CLEAR(self->handler);
    return 0;
}

static void
port_dealloc(PortObject *self)
{
    PyObject_GC_UnTrack(self);
    port_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
port_tp_init(PortObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fd", NULL};
    int fd;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i", kwlist, &fd)) {
        return -1;
    }
    if (fd < 0) {
        PyErr_Format(PyExc_ValueError, "fd %d is not a descriptor", fd);
        return -1;
    }
    self->fd = fd;
    Py_XSETREF(self->handler, Py_NewRef(Py_None));
    self->fast_packets = 0;
    self->dropped = 0;
    self->last_arrival = 0.0;
    return 0;
}

/* (host, port) of a socket address, as asyncio gives it trimmed to two items. */
static PyObject *
address_tuple(const struct sockaddr_storage *from)
{
    char host[INET6_ADDRSTRLEN];
    int port;
    if (from->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)from;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
        port = ntohs(v4->sin_port);
    }
    else if (from->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)from;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
        port = ntohs(v6->sin6_port);
    }
    else {
        return Py_BuildValue("(si)", "", 0);
    }
    return Py_BuildValue("(si)", host, port);
}

static int
deliver(PyObject *handler, const unsigned char *p, Py_ssize_t length,
        const struct sockaddr_storage *from)
{
    PyObject *data = PyBytes_FromStringAndSize((const char *)p, length);
    if (data == NULL) {
        return -1;
    }
    PyObject *addr = address_tuple(from);
    if (addr == NULL) {
        Py_DECREF(data);
        return -1;
    }
    PyObject *call_args[2] = {data, addr};
    PyObject *result = PyObject_Vectorcall(handler, call_args, 2, NULL);
    Py_DECREF(data);
    Py_DECREF(addr);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* One datagram the socket gave: to the relay's fast path, or to the handler. */
static int
port_take(PortObject *self, unsigned char *buffer, Py_ssize_t length,
          const struct sockaddr_storage *from)
{
    /* The handler may replace itself (a bridge starting): hold this one. */
    PyObject *handler = Py_NewRef(self->handler);
    int status = 0;
    if (Py_IS_TYPE(handler, &RelayType)) {
        double now = monotonic_now();
        status = relay_take(handler, buffer, length, (struct sockaddr *)from, now);
        if (status > 0) {
            self->fast_packets += 1;
            self->last_arrival = now;
        }
        else if (status == 0) {
            status = deliver(relay_slow(handler), buffer, length, from);
        }
    }
    else if (handler != Py_None) {
        status = deliver(handler, buffer, length, from);
    }
    Py_DECREF(handler);
    return status < 0 ? -1 : 0;
}

/* readable(): the event loop's reader callback.
 *
 * recvmmsg takes up to VECTOR datagrams a system call. Fewer than VECTOR
 * means the socket was drained when it answered, so the common case (one
 * RTP packet every 20 ms per socket) costs one system call, not a read and
 * a second one that says EAGAIN. The loop's poll is level-triggered: a
 * datagram that arrives after the call makes the socket readable again. */
static PyObject *
port_py_readable(PortObject *self, PyObject *unused)
{
    unsigned char buffers[VECTOR][DATAGRAM];
    struct sockaddr_storage sources[VECTOR];
    struct iovec vectors[VECTOR];
    struct mmsghdr messages[VECTOR];
    for (int taken = 0; taken < BATCH;) {
        memset(messages, 0, sizeof(messages));
        for (int i = 0; i < VECTOR; i++) {
            vectors[i].iov_base = buffers[i];
            vectors[i].iov_len = DATAGRAM;
            messages[i].msg_hdr.msg_iov = &vectors[i];
            messages[i].msg_hdr.msg_iovlen = 1;
            messages[i].msg_hdr.msg_name = &sources[i];
            messages[i].msg_hdr.msg_namelen = sizeof(sources[i]);
        }
        int got = recvmmsg(self->fd, messages, VECTOR, MSG_DONTWAIT, NULL);
        if (got < 0) {
            if (errno == EINTR || errno == ECONNREFUSED) {
                /* A signal, or the ICMP error of a datagram we sent: read on. */
                taken += 1;
                continue;
            }
            break; /* EAGAIN: drained; anything else: the socket's problem, not ours */
        }
        for (int i = 0; i < got; i++) {
            if (messages[i].msg_hdr.msg_flags & MSG_TRUNC) {
                self->dropped += 1;
                continue;
            }
            if (port_take(self, buffers[i], (Py_ssize_t)messages[i].msg_len, &sources[i]) < 0) {
                return NULL; /* the loop reports it; the reader stays */
            }
        }
        taken += got;
        if (got < VECTOR) {
            break;
        }
    }
    Py_RETURN_NONE;
}

static PyObject *
port_get_handler(PortObject *self, void *closure)
{
    return Py_NewRef(self->handler);
}

static int
port_set_handler(PortObject *self, PyObject *value, void *closure)
{
    if (value == NULL) {
        value = Py_None;
    }
    if (value != Py_None && !Py_IS_TYPE(value, &RelayType) && !PyCallable_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "a port's handler is a Relay, a callable or None");
        return -1;
    }
    Py_XSETREF(self->handler, Py_NewRef(value));
    return 0;
}

/* reset(): the counters back to a new port's, for a socket a new leg reuses. */
static PyObject *
port_py_reset(PortObject *self, PyObject *unused)
{
    self->fast_packets = 0;
    self->dropped = 0;
    self->last_arrival = 0.0;
    Py_RETURN_NONE;
}

static PyMethodDef port_methods[] = {
    {"readable", (PyCFunction)port_py_readable, METH_NOARGS,
     "The event loop's reader callback: read and hand on what the socket holds."},
    {"reset", (PyCFunction)port_py_reset, METH_NOARGS,
     "Count from zero again: the socket serves a new leg."},
    {NULL}};

static PyMemberDef port_members[] = {
    {"fd", T_INT, offsetof(PortObject, fd), READONLY, "The socket's descriptor."},
    {"fast_packets", T_ULONGLONG, offsetof(PortObject, fast_packets), READONLY,
     "Packets a relay's fast path took."},
    {"dropped", T_ULONGLONG, offsetof(PortObject, dropped), READONLY,
     "Datagrams too large to be RTP, dropped."},
    {"last_arrival", T_DOUBLE, offsetof(PortObject, last_arrival), READONLY,
     "When (CLOCK_MONOTONIC) the fast path last took a packet; 0 before."},
    {NULL}};

static PyGetSetDef port_getset[] = {
    {"handler", (getter)port_get_handler, (setter)port_set_handler,
     "What gets the datagrams: a Relay, a callable(data, addr) or None.", NULL},
    {NULL}};

PyTypeObject PortType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "media._fastrtp.Port",
    .tp_basicsize = sizeof(PortObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One UDP socket of an RTP leg, read in C (see media/_fastrtp_src/port.c).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)port_tp_init,
    .tp_dealloc = (destructor)port_dealloc,
    .tp_traverse = (traverseproc)port_traverse,
    .tp_clear = (inquiry)port_clear,
    .tp_methods = port_methods,
    .tp_members = port_members,
    .tp_getset = port_getset,
};
