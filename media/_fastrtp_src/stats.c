/* ReceiverStatsCore: the C twin of media._stats.PyReceiverStats. */

#include "fastrtp.h"

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

int
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

PyTypeObject StatsType = {
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
