/*
 * The data plane's reactor: a native thread that runs the steady state's hops without
 * waking Python (included by _speedups.c inside its Linux data plane section).
 *
 * Why: an event-loop wakeup costs ~85 us of Python on a small VM, and an overlay ping
 * costs three of them (TAP readable, UDP readable, UDP readable). The thread waits in
 * epoll_wait without the GIL on the watched UDP sockets and Linux TAPs and does what
 * rx_burst and tx_burst do:
 *
 *   UDP readable  recvmmsg (with UDP_GRO), granted FRAMEs written to their TAPs,
 *                 fragments reassembled; then every watched port is read at once (the
 *                 host's stack answers a ping inside the TAP write), and what the send
 *                 grants cover leaves by UDP: a ping's turnaround in one native wakeup.
 *   TAP readable  what tx_burst does: granted frames sealed and sent.
 *
 * What it does not carry goes into a bounded ring of plain C memory (no PyObject is
 * touched by the thread), and Python is woken through an eventfd (notify_fd) that its
 * event loop watches; take() empties the ring into a list of
 *
 *   (0, sock_id, host, port, datagram)   a datagram for the core, as rx_burst gives it
 *   (1, nwid, "", vnet, read)            a port read given back, as tx_burst gives it
 *   (2, nwid, "", 0, b"")                the port's reads failed: it is no longer read
 *
 * in arrival order. A port whose read went to the ring sends all its later reads there
 * too until Python says it handed them on (taken(): a port's frames keep their order,
 * tx_burst's rule; a port with reads put in the ring since take() keeps giving back).
 *
 * Ring bounds (node/bounds.py): items and bytes. Before each datagram the thread
 * checks there is room for the worst it can add (a held fragment set given back with
 * it: DP_PIECES + 1 items, DP_SLOT_BYTES + its length); before each port read, room for
 * one read. Without room it stops where it is (a batch read from a socket waits in the
 * reactor's own buffer, its position kept) and waits on its control eventfd only, so a
 * flood stays in the kernel's buffers; take() wakes it and it resumes exactly there.
 *
 * Locking: one mutex guards the tables (grants, send grants, slots, counters, ring,
 * watches). Every method takes it while the reactor runs (waiting for it without the
 * GIL); the thread holds it while it handles one wakeup's events, never in
 * epoll_wait. An AesGmacSiv's contexts have their own mutex (siv_armor_buf and
 * siv_open_into take it), since the general path uses the same key objects.
 *
 * fds: Python owns their lifetime. watch_socket(fd, sock_id), watch_port(fd, nwid,
 * vnet), unwatch(fd): each watch's epoll token carries a generation, so an event for a
 * watch removed (and its fd number reused) is never acted on. unwatch() must come
 * before close(): it also drops every receive grant writing to that fd and every send
 * grant sending from it, so no later write reaches a closed or reused descriptor.
 *
 * Clock: CLOCK_REALTIME in ms, the core's clock (service/clock.py: time.time()).
 *
 * Scheduling: the thread runs SCHED_BATCH (see rt_main).
 */
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>

#define RT_CTL_TOKEN 0xFFFFu         /* epoll token of the control eventfd */
#define RT_EVENTS 32                 /* events per epoll_wait */
#define RT_UDP_BUDGET 64             /* reads per socket per wakeup (then the others) */
#define RT_PORT_BUDGET 128           /* reads per port per wakeup */
#define RT_MAX_WATCHES 1024          /* token index is 16 bits, RT_CTL_TOKEN reserved */

enum { RT_SOCKET = 1, RT_PORT = 2 };
enum { RT_ITEM_DATAGRAM = 0, RT_ITEM_READ = 1, RT_ITEM_PORT_FAILED = 2 };

struct rt_watch {
    int kind; /* 0: free */
    int fd;
    int sock_id;
    uint64_t nwid;
    int vnet;
    int giving_back; /* a read went to the ring: the later ones follow until taken() */
    int in_ring;     /* its reads in the ring now */
    uint64_t gen;
};

struct rt_item {
    int kind;
    int sock_id;
    uint64_t nwid; /* or vnet for a read: see take() */
    int vnet;
    dp_addr from;
    size_t off, len;
};

struct dp_reactor {
    pthread_t thread;
    int running, stop, blocked;
    int ep, ep_ctl, ctl_fd, notify_fd, notified;
    struct rt_watch *watches;
    int n_watches; /* high-water index + 1 */
    uint64_t next_gen;
    struct rt_item *items;
    int n_items, max_items, udp_items;
    uint8_t *bytes;
    size_t fill, max_bytes;
    /* a batch read from a socket, processed up to (m, at) when the ring filled */
    uint8_t *rxbuf; /* DP_VLEN x DP_RXBUF */
    int pending, p_watch, p_sock_id, p_got, p_m;
    uint64_t p_gen;
    size_t p_at;
    size_t p_len[DP_VLEN], p_seg[DP_VLEN];
    dp_addr p_from[DP_VLEN];
    int p_ok[DP_VLEN];
    int cur_sock_id; /* dp_pass's socket while the thread handles one */
    /* counters */
    uint64_t wakeups, ring_full, taken, port_failures;
};

/* Take the table's mutex if the reactor runs (waiting for it without the GIL); what
 * it returns goes to rt_unlock, so a reactor stopped meanwhile cannot leave it held. */
static int rt_lock(DataplaneObject *self)
{
    if (self->rt == NULL)
        return 0;
    if (pthread_mutex_trylock(&self->lock) != 0) {
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&self->lock);
        Py_END_ALLOW_THREADS
    }
    return 1;
}

static void rt_unlock(DataplaneObject *self, int locked)
{
    (void)self;
    if (locked)
        pthread_mutex_unlock(&self->lock);
}

static int64_t rt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int rt_room(struct dp_reactor *rt, int items, size_t bytes)
{
    return rt->n_items + items <= rt->max_items && rt->fill + bytes <= rt->max_bytes;
}

/* Append one item (room checked by the caller) and wake Python once per take(). */
static void rt_put(struct dp_reactor *rt, int kind, int sock_id, uint64_t nwid, int vnet,
                   const dp_addr *from, const uint8_t *p, size_t n)
{
    struct rt_item *it;
    if (!rt_room(rt, 1, n))
        return; /* unreachable: every caller reserved the room first */
    it = &rt->items[rt->n_items++];
    it->kind = kind;
    it->sock_id = sock_id;
    it->nwid = nwid;
    it->vnet = vnet;
    if (from != NULL)
        it->from = *from;
    else
        memset(&it->from, 0, sizeof it->from);
    it->off = rt->fill;
    it->len = n;
    if (n)
        memcpy(rt->bytes + rt->fill, p, n);
    rt->fill += n;
    if (kind == RT_ITEM_DATAGRAM)
        rt->udp_items++;
    if (!rt->notified) {
        uint64_t one = 1;
        ssize_t w = write(rt->notify_fd, &one, sizeof one);
        (void)w; /* EAGAIN only when the counter is full: Python is woken anyway */
        rt->notified = 1;
    }
}

/* dp_pass's way while the thread runs: the datagram goes to the ring. */
static int dp_rt_pass(DataplaneObject *self, const dp_addr *from, const uint8_t *p, size_t n)
{
    struct dp_reactor *rt = self->rt;
    rt_put(rt, RT_ITEM_DATAGRAM, rt->cur_sock_id, 0, 0, from, p, n);
    self->passed++;
    return 1;
}

static struct rt_watch *rt_find(struct dp_reactor *rt, int fd)
{
    int i;
    for (i = 0; i < rt->n_watches; i++)
        if (rt->watches[i].kind != 0 && rt->watches[i].fd == fd)
            return &rt->watches[i];
    return NULL;
}

static void rt_forget(struct dp_reactor *rt, struct rt_watch *w)
{
    epoll_ctl(rt->ep, EPOLL_CTL_DEL, w->fd, NULL); /* fails harmlessly if gone */
    if (rt->pending && &rt->watches[rt->p_watch] == w)
        rt->pending = 0; /* the rest of its batch is dropped with the socket */
    w->kind = 0;
    w->fd = -1;
    w->gen = rt->next_gen++;
}

/* The datagrams of the pending batch from (p_m, p_at): 0 when the ring filled. */
static int rt_process(DataplaneObject *self, int64_t now)
{
    struct dp_reactor *rt = self->rt;
    rt->cur_sock_id = rt->p_sock_id;
    for (; rt->p_m < rt->p_got; rt->p_m++, rt->p_at = 0) {
        int m = rt->p_m;
        size_t n = rt->p_len[m], seg = rt->p_seg[m];
        const uint8_t *p = rt->rxbuf + (size_t)m * DP_RXBUF;
        if (!rt->p_ok[m])
            continue;
        for (; rt->p_at < n || (n == 0 && rt->p_at == 0); rt->p_at += seg) {
            size_t len = n - rt->p_at < seg ? n - rt->p_at : seg;
            if (!rt_room(rt, DP_PIECES + 1, DP_SLOT_BYTES + len)) {
                rt->blocked = 1;
                rt->ring_full++;
                return 0;
            }
            if (!dp_datagram(self, NULL, rt->p_sock_id, &rt->p_from[m], p + rt->p_at, len, now))
                self->read_errors++; /* OpenSSL or memory failed: the datagram is lost */
            if (n == 0)
                break;
        }
    }
    rt->pending = 0;
    return 1;
}

static void rt_udp(DataplaneObject *self, int wi, int64_t now)
{
    struct dp_reactor *rt = self->rt;
    struct rt_watch *w = &rt->watches[wi];
    dp_recv r;
    int reads = 0;

    while (reads < RT_UDP_BUDGET && !rt->blocked) {
        int got, m;
        dp_recv_prepare(&r, rt->rxbuf, DP_VLEN);
        got = recvmmsg(w->fd, r.msgs, DP_VLEN, MSG_DONTWAIT, NULL);
        if (got < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno != EINTR)
                self->read_errors++; /* ICMP errors surface here: not fatal */
            reads++;
            continue;
        }
        reads += got;
        for (m = 0; m < got; m++) {
            rt->p_ok[m] = dp_from_sockaddr(&r.names[m], &rt->p_from[m]);
            rt->p_len[m] = r.msgs[m].msg_len;
            rt->p_seg[m] = dp_recv_segment(&r, m);
        }
        rt->pending = 1;
        rt->p_watch = wi;
        rt->p_gen = w->gen;
        rt->p_sock_id = w->sock_id;
        rt->p_got = got;
        rt->p_m = 0;
        rt->p_at = 0;
        if (!rt_process(self, now) || got < DP_VLEN)
            break;
    }
    /* a run of merged TCP segments (_dp_gro.h) never outlives the wakeup's socket */
    dp_gro_flush(&self->gro, &self->delivered, &self->tap_errors);
}

static void rt_port(DataplaneObject *self, struct rt_watch *w, int64_t now, uint32_t events)
{
    struct dp_reactor *rt = self->rt;
    int reads = 0;
    while (reads < RT_PORT_BUDGET) {
        ssize_t n;
        int r = 0;
        if (!rt_room(rt, 1, DP_FRAME_BUF)) {
            rt->blocked = 1;
            rt->ring_full++;
            break;
        }
        n = read(w->fd, self->frame, DP_FRAME_BUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !(events & (EPOLLERR | EPOLLHUP)))
            break;
        if (n < 0) {
            /* a port in error polls readable for ever: stop reading it, tell Python */
            rt_put(rt, RT_ITEM_PORT_FAILED, 0, w->nwid, w->vnet, NULL, NULL, 0);
            rt->port_failures++;
            rt_forget(rt, w);
            break;
        }
        reads++;
        if (!w->giving_back) {
            r = dp_tx_frame(self, w->nwid, w->vnet, self->frame, (size_t)n, now);
            if (r == 1) {
                self->sent++;
                continue;
            }
        }
        w->giving_back = 1;
        w->in_ring++;
        rt_put(rt, RT_ITEM_READ, 0, w->nwid, w->vnet, NULL, self->frame, (size_t)n);
        self->given_back++;
    }
    dp_flush(self);
}

/* One wakeup's events, under the mutex. */
static void rt_handle(DataplaneObject *self, struct epoll_event *ev, int n)
{
    struct dp_reactor *rt = self->rt;
    int64_t now = rt_now_ms();
    uint64_t delivered = self->delivered;
    int i;

    rt->wakeups++;
    if (rt->pending && !rt->blocked) {
        struct rt_watch *w = &rt->watches[rt->p_watch];
        if (w->kind == RT_SOCKET && w->gen == rt->p_gen) {
            rt_process(self, now);
            dp_gro_flush(&self->gro, &self->delivered, &self->tap_errors);
        } else
            rt->pending = 0;
    }
    for (i = 0; i < n; i++) {
        uint64_t token = ev[i].data.u64;
        unsigned idx = (unsigned)(token & 0xFFFFu);
        struct rt_watch *w;
        if (idx == RT_CTL_TOKEN) {
            uint64_t v;
            ssize_t r = read(rt->ctl_fd, &v, sizeof v);
            (void)r;
            continue;
        }
        if (rt->blocked)
            continue; /* level-triggered: reported again once there is room */
        if (idx >= (unsigned)rt->n_watches)
            continue;
        w = &rt->watches[idx];
        if (w->kind == 0 || w->gen != (token >> 16))
            continue; /* unwatched (and maybe its fd reused) since epoll_wait */
        if (w->kind == RT_SOCKET)
            rt_udp(self, (int)idx, now);
        else
            rt_port(self, w, now, ev[i].events);
    }
    if (self->delivered != delivered)
        for (i = 0; i < rt->n_watches && !rt->blocked; i++)
            if (rt->watches[i].kind == RT_PORT)
                rt_port(self, &rt->watches[i], now, 0);
}

static void *rt_main(void *arg)
{
    DataplaneObject *self = arg;
    struct dp_reactor *rt = self->rt;
    struct epoll_event ev[RT_EVENTS];
    struct sched_param batch;
    int blocked = 0;

    /* SCHED_BATCH: no wakeup preemption. Woken at once by every frame, the thread
     * otherwise preempts the host's sender (iperf3 writing into the TAP) on a small
     * machine frame by frame: measured, TCP through the overlay fell from ~3.2 to
     * ~2.3 Gbit/s. A lone ping still finds an idle CPU and is answered at once. */
    memset(&batch, 0, sizeof batch);
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &batch); /* best effort */

    for (;;) {
        int n = epoll_wait(blocked ? rt->ep_ctl : rt->ep, ev, RT_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break; /* EBADF/EINVAL: only if the fds were torn down under us */
        }
        pthread_mutex_lock(&self->lock);
        if (rt->stop) {
            pthread_mutex_unlock(&self->lock);
            break;
        }
        rt_handle(self, ev, n);
        blocked = rt->blocked;
        pthread_mutex_unlock(&self->lock);
    }
    return NULL;
}

static void rt_free(struct dp_reactor *rt)
{
    if (rt->ep >= 0)
        close(rt->ep);
    if (rt->ep_ctl >= 0)
        close(rt->ep_ctl);
    if (rt->ctl_fd >= 0)
        close(rt->ctl_fd);
    if (rt->notify_fd >= 0)
        close(rt->notify_fd);
    if (rt->bytes != NULL)
        wipe(rt->bytes, rt->max_bytes);
    PyMem_RawFree(rt->bytes);
    PyMem_RawFree(rt->items);
    PyMem_RawFree(rt->watches);
    if (rt->rxbuf != NULL)
        wipe(rt->rxbuf, (size_t)DP_VLEN * DP_RXBUF);
    PyMem_RawFree(rt->rxbuf);
    PyMem_RawFree(rt);
}

/* Stop and join the thread (dealloc and stop()); the watched fds stay open. */
static void dp_rt_stop(DataplaneObject *self)
{
    struct dp_reactor *rt = self->rt;
    uint64_t one = 1;
    ssize_t w;
    if (rt == NULL)
        return;
    pthread_mutex_lock(&self->lock);
    rt->stop = 1;
    w = write(rt->ctl_fd, &one, sizeof one);
    (void)w;
    pthread_mutex_unlock(&self->lock);
    Py_BEGIN_ALLOW_THREADS
    pthread_join(rt->thread, NULL);
    Py_END_ALLOW_THREADS
    self->rt = NULL;
    rt_free(rt);
}

PyDoc_STRVAR(dp_start_doc,
"start(ring_items, ring_bytes) -> int\n\n"
"Start the reactor thread (see _dp_reactor.h) with a ring of at most ring_items items\n"
"and ring_bytes bytes; return the eventfd that is readable while the ring holds\n"
"something (watch it; take() empties both). RuntimeError if it runs already, OSError\n"
"if a descriptor or the thread cannot be made.");

static PyObject *dp_start(DataplaneObject *self, PyObject *args)
{
    int items;
    Py_ssize_t bytes;
    struct dp_reactor *rt;
    struct epoll_event ev;
    int err;

    if (!PyArg_ParseTuple(args, "in:start", &items, &bytes))
        return NULL;
    if (self->grants == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Dataplane is not initialized");
        return NULL;
    }
    if (self->rt != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the reactor runs already");
        return NULL;
    }
    if (items < DP_PIECES + 1 || items > (1 << 24) ||
        bytes < (Py_ssize_t)(DP_SLOT_BYTES + DP_RXBUF + DP_FRAME_BUF) || bytes > (1LL << 30)) {
        PyErr_SetString(PyExc_ValueError, "ring bounds out of range");
        return NULL;
    }
    rt = PyMem_RawCalloc(1, sizeof *rt);
    if (rt == NULL)
        return PyErr_NoMemory();
    rt->ep = rt->ep_ctl = rt->ctl_fd = rt->notify_fd = -1;
    rt->max_items = items;
    rt->max_bytes = (size_t)bytes;
    rt->items = PyMem_RawCalloc((size_t)items, sizeof(struct rt_item));
    rt->bytes = PyMem_RawMalloc((size_t)bytes);
    rt->watches = PyMem_RawCalloc(RT_MAX_WATCHES, sizeof(struct rt_watch));
    rt->rxbuf = PyMem_RawMalloc((size_t)DP_VLEN * DP_RXBUF);
    if (!rt->items || !rt->bytes || !rt->watches || !rt->rxbuf) {
        rt_free(rt);
        return PyErr_NoMemory();
    }
    rt->ep = epoll_create1(EPOLL_CLOEXEC);
    rt->ep_ctl = epoll_create1(EPOLL_CLOEXEC);
    rt->ctl_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    rt->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.u64 = RT_CTL_TOKEN;
    if (rt->ep < 0 || rt->ep_ctl < 0 || rt->ctl_fd < 0 || rt->notify_fd < 0 ||
        epoll_ctl(rt->ep, EPOLL_CTL_ADD, rt->ctl_fd, &ev) < 0 ||
        epoll_ctl(rt->ep_ctl, EPOLL_CTL_ADD, rt->ctl_fd, &ev) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        rt_free(rt);
        return NULL;
    }
    rt->next_gen = 1;
    self->rt = rt; /* set before the thread exists: the methods lock from now on */
    err = pthread_create(&rt->thread, NULL, rt_main, self);
    if (err != 0) {
        self->rt = NULL;
        rt_free(rt);
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(rt->notify_fd);
}

PyDoc_STRVAR(dp_stop_doc,
"stop() -> None\n\n"
"Stop the reactor and join its thread (nothing if it does not run). Its watches are\n"
"forgotten (the fds stay open: Python owns them) and what the ring held is lost:\n"
"take() first.");

static PyObject *dp_stop(DataplaneObject *self, PyObject *unused)
{
    (void)unused;
    dp_rt_stop(self);
    Py_RETURN_NONE;
}

static struct rt_watch *rt_new_watch(DataplaneObject *self, int fd)
{
    struct dp_reactor *rt = self->rt;
    struct epoll_event ev;
    struct rt_watch *w = NULL;
    int i;

    if (rt == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the reactor does not run");
        return NULL;
    }
    if (fd < 0 || rt_find(rt, fd) != NULL) {
        PyErr_SetString(PyExc_ValueError, "fd is negative or watched already");
        return NULL;
    }
    for (i = 0; i < RT_MAX_WATCHES; i++)
        if (rt->watches[i].kind == 0) {
            w = &rt->watches[i];
            break;
        }
    if (w == NULL) {
        PyErr_SetString(PyExc_ValueError, "too many watched fds");
        return NULL;
    }
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    w->gen = rt->next_gen++;
    ev.data.u64 = (w->gen << 16) | (uint64_t)i;
    if (epoll_ctl(rt->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return NULL;
    }
    w->fd = fd;
    w->giving_back = 0;
    w->in_ring = 0;
    if (i >= rt->n_watches)
        rt->n_watches = i + 1;
    return w;
}

PyDoc_STRVAR(dp_watch_socket_doc,
"watch_socket(fd, sock_id) -> None\n\n"
"The reactor reads UDP socket fd (the service's socket sock_id) from now on.");

static PyObject *dp_watch_socket(DataplaneObject *self, PyObject *args)
{
    int fd, sock_id;
    struct rt_watch *w;
    if (!PyArg_ParseTuple(args, "ii:watch_socket", &fd, &sock_id))
        return NULL;
    int locked = rt_lock(self);
    w = rt_new_watch(self, fd);
    if (w != NULL) {
        w->sock_id = sock_id;
        w->kind = RT_SOCKET;
    }
    rt_unlock(self, locked);
    if (w == NULL)
        return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(dp_watch_port_doc,
"watch_port(fd, nwid, vnet) -> None\n\n"
"The reactor reads port fd (network nwid; vnet: reads start with a virtio_net_hdr)\n"
"from now on: what the send grants cover leaves, the rest goes to the ring.");

static PyObject *dp_watch_port(DataplaneObject *self, PyObject *args)
{
    int fd, vnet;
    unsigned long long nwid;
    struct rt_watch *w;
    if (!PyArg_ParseTuple(args, "iKp:watch_port", &fd, &nwid, &vnet))
        return NULL;
    int locked = rt_lock(self);
    w = rt_new_watch(self, fd);
    if (w != NULL) {
        w->nwid = nwid;
        w->vnet = vnet;
        w->kind = RT_PORT;
    }
    rt_unlock(self, locked);
    if (w == NULL)
        return NULL;
    Py_RETURN_NONE;
}

/* Drop the grants that write to or send from fd (it is about to close). */
static void rt_drop_grants_of(DataplaneObject *self, int fd)
{
    int i, j;
    for (i = j = 0; i < self->n_grants; i++) {
        if (self->grants[i].tap_fd == fd) {
            Py_CLEAR(self->grants[i].siv);
            continue;
        }
        if (i != j)
            self->grants[j] = self->grants[i];
        j++;
    }
    if (j != self->n_grants)
        wipe(self->grants + j, sizeof(dp_grant) * (size_t)(self->n_grants - j));
    self->n_grants = j;
    if (self->n_out && self->out_fd == fd)
        dp_flush(self);
    for (i = j = 0; i < self->n_sends; i++) {
        if (self->sends[i].sock_fd == fd) {
            Py_CLEAR(self->sends[i].siv);
            continue;
        }
        if (i != j)
            self->sends[j] = self->sends[i];
        j++;
    }
    if (j != self->n_sends)
        wipe(self->sends + j, sizeof(struct dp_send) * (size_t)(self->n_sends - j));
    self->n_sends = j;
}

PyDoc_STRVAR(dp_unwatch_doc,
"unwatch(fd) -> bool\n\n"
"Stop reading fd (call it before closing fd): after it returns the reactor never\n"
"reads, writes or sends through fd again; the receive grants writing to it and the\n"
"send grants sending from it are dropped. False if fd was not watched (grants are\n"
"dropped all the same).");

static PyObject *dp_unwatch(DataplaneObject *self, PyObject *arg)
{
    long fdl = PyLong_AsLong(arg);
    int fd;
    struct rt_watch *w = NULL;
    if (fdl == -1 && PyErr_Occurred())
        return NULL;
    if (fdl < INT_MIN || fdl > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "fd out of range");
        return NULL;
    }
    fd = (int)fdl;
    int locked = rt_lock(self);
    if (self->rt != NULL) {
        w = rt_find(self->rt, fd);
        if (w != NULL)
            rt_forget(self->rt, w);
    }
    if (fd >= 0)
        rt_drop_grants_of(self, fd);
    rt_unlock(self, locked);
    return PyBool_FromLong(w != NULL);
}

PyDoc_STRVAR(dp_take_doc,
"take() -> list[tuple[int, int, str, int, bytes]]\n\n"
"Empty the ring: (0, sock_id, host, port, datagram) for the core, (1, nwid, '', vnet,\n"
"read) a port read given back, (2, nwid, '', 0, b'') a port no longer read (its reads\n"
"failed); in arrival order. A reactor stopped for want of room resumes. Call taken()\n"
"once the port reads are handed on.");

static PyObject *dp_take(DataplaneObject *self, PyObject *unused)
{
    struct dp_reactor *rt;
    PyObject *out = NULL;
    int i;
    (void)unused;

    int locked = rt_lock(self);
    rt = self->rt;
    if (rt == NULL) {
        rt_unlock(self, locked);
        return PyList_New(0);
    }
    out = PyList_New(rt->n_items);
    if (out == NULL)
        goto done;
    for (i = 0; i < rt->n_items; i++) {
        struct rt_item *it = &rt->items[i];
        const char *data = (const char *)rt->bytes + it->off;
        PyObject *rec;
        if (it->kind == RT_ITEM_DATAGRAM) {
            char host[INET6_ADDRSTRLEN];
            if (inet_ntop(it->from.family, it->from.ip, host, sizeof host) == NULL)
                host[0] = 0;
            rec = Py_BuildValue("iisiy#", it->kind, it->sock_id, host, (int)it->from.port, data,
                                (Py_ssize_t)it->len);
        } else
            rec = Py_BuildValue("iKsiy#", it->kind, (unsigned long long)it->nwid, "", it->vnet,
                                data, (Py_ssize_t)it->len);
        if (rec == NULL) {
            Py_CLEAR(out);
            goto done;
        }
        PyList_SET_ITEM(out, i, rec);
    }
done:
    if (out != NULL) {
        uint64_t v;
        ssize_t r = read(rt->notify_fd, &v, sizeof v);
        (void)r;
        rt->taken += (uint64_t)rt->n_items;
        rt->n_items = 0;
        rt->udp_items = 0;
        rt->fill = 0;
        rt->notified = 0;
        for (i = 0; i < rt->n_watches; i++)
            rt->watches[i].in_ring = 0;
        if (rt->blocked) {
            uint64_t one = 1;
            ssize_t w = write(rt->ctl_fd, &one, sizeof one);
            (void)w;
            rt->blocked = 0;
        }
    }
    rt_unlock(self, locked);
    return out;
}

PyDoc_STRVAR(dp_taken_doc,
"taken() -> None\n\n"
"The port reads of the last take() are handed on (their frames went to the core):\n"
"a port that gave reads back may send natively again, unless it put more in the\n"
"ring since take().");

static PyObject *dp_taken(DataplaneObject *self, PyObject *unused)
{
    int i;
    (void)unused;
    int locked = rt_lock(self);
    if (self->rt != NULL)
        for (i = 0; i < self->rt->n_watches; i++)
            if (self->rt->watches[i].in_ring == 0)
                self->rt->watches[i].giving_back = 0;
    rt_unlock(self, locked);
    Py_RETURN_NONE;
}

/* --- the table's methods, under the mutex while the reactor runs --------------- */

#define RT_LOCKED(name, call)                  \
    static PyObject *name                      \
    {                                          \
        PyObject *r;                           \
        int locked = rt_lock(self);            \
        r = call;                              \
        rt_unlock(self, locked);               \
        return r;                              \
    }

RT_LOCKED(dp_locked_drain(DataplaneObject *self, PyObject *unused), dp_drain(self, unused))
RT_LOCKED(dp_locked_drain_send(DataplaneObject *self, PyObject *unused),
          dp_drain_send(self, unused))
RT_LOCKED(dp_locked_replace_send(DataplaneObject *self, PyObject *arg),
          dp_replace_send(self, arg))
RT_LOCKED(dp_locked_rx_burst(DataplaneObject *self, PyObject *args), dp_rx_burst(self, args))
RT_LOCKED(dp_locked_tx_burst(DataplaneObject *self, PyObject *args), dp_tx_burst(self, args))

static PyObject *dp_locked_replace(DataplaneObject *self, PyObject *args)
{
    PyObject *grants, *kept = Py_None, *r;
    int whole = 1;
    if (!PyArg_ParseTuple(args, "O|O:replace", &grants, &kept))
        return NULL;
    int locked = rt_lock(self);
    if (kept != Py_None && self->rt != NULL && self->rt->udp_items > 0) {
        grants = kept;
        whole = 0;
    }
    r = dp_replace(self, grants);
    rt_unlock(self, locked);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    return PyBool_FromLong(whole);
}

static PyObject *dp_locked_stats(DataplaneObject *self, PyObject *unused)
{
    PyObject *r;
    int locked = rt_lock(self);
    r = dp_stats(self, unused);
    if (r != NULL) {
        struct dp_reactor *rt = self->rt;
        PyObject *extra = Py_BuildValue(
            "{sisKsKsisnsKsKsi}", "reactor", rt != NULL, "reactor_wakeups",
            (unsigned long long)(rt ? rt->wakeups : 0), "ring_full",
            (unsigned long long)(rt ? rt->ring_full : 0), "ring_items", rt ? rt->n_items : 0,
            "ring_bytes", (Py_ssize_t)(rt ? rt->fill : 0), "ring_taken",
            (unsigned long long)(rt ? rt->taken : 0), "port_failures",
            (unsigned long long)(rt ? rt->port_failures : 0), "ring_blocked",
            rt ? rt->blocked : 0);
        if (extra == NULL || PyDict_Update(r, extra) < 0)
            Py_CLEAR(r);
        Py_XDECREF(extra);
    }
    rt_unlock(self, locked);
    return r;
}
