/* SenderStateCore: the C twin of media._stats.PySenderState. */

#include "fastrtp.h"

/* ------------------------------------------------------------------------
 * SenderStateCore
 */

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

PyTypeObject SenderType = {
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
